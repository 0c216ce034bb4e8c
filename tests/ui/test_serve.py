"""`ui.serve`: the Streamlit options the server sets for many sessions, and the heap freeze."""

from __future__ import annotations

import gc

from ui.serve import DEFAULT_OPTIONS, freeze_heap, streamlit_argv


def test_post_script_collection_is_turned_off_before_the_script_arguments():
    argv = ["run", "ui/app.py", "--server.port", "8600", "--", "--store", "s", "--model", "m"]
    out = streamlit_argv(argv)
    split = out.index("--")
    assert out[split:] == ["--", "--store", "s", "--model", "m"], "the app's own arguments stay last, unchanged"
    assert out[:4] == argv[:4]
    options = out[4:split]
    assert options == ["--runner.postScriptGC", "false"]
    assert set(DEFAULT_OPTIONS) == {"--runner.postScriptGC"}


def test_an_option_given_on_the_command_line_wins_in_either_spelling():
    for given in (["--runner.postScriptGC", "true"], ["--runner.postScriptGC=true"]):
        out = streamlit_argv(["run", "ui/app.py", *given, "--", "--store", "s"])
        assert out == ["run", "ui/app.py", *given, "--", "--store", "s"]


def test_without_script_arguments_the_options_go_last():
    assert streamlit_argv(["run", "ui/app.py"]) == ["run", "ui/app.py", "--runner.postScriptGC", "false"]


def test_freeze_heap_exempts_the_objects_alive_then_from_collections():
    try:
        survivor = [object() for _ in range(1000)]
        freeze_heap()
        assert gc.get_freeze_count() >= len(survivor)
        assert not any(o is survivor for o in gc.get_objects())  # frozen objects are no longer tracked per generation
    finally:
        gc.unfreeze()  # the test process's collector as it was
