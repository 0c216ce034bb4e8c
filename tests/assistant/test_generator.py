"""The real tiny generator (xvision_model's classes, built in-process) behind the chat-model
wrapper and through the whole chain.

As in tests/xvision_model, the tiny model is built with its tokenizer trained on the store's
analyses and weights drawn large enough that greedy outputs vary with the visual tokens; it is not
trained, so what it writes is mostly wrong — which is what the chain must survive: it cites the
store's values whatever the model writes and keeps the model's text only when the gate passes it.
"""

from __future__ import annotations

import re

import pytest
import torch

from indexer.analysis import read_classes
from xvision_model.writer import write_analyses

from assistant.api import Assistant
from assistant.chain import build_chain
from assistant.generator import XVisionChatModel, record_message
from assistant.grounding import check_analysis
from assistant.store_access import StoreView
from assistant.answers.observe import relevant_sentences
from plans import fixed, make_plan, window
from indexer.core.errors import InputError
from xvision_model.artifacts import load_model, save_model
from xvision_model.lm import LoraSettings
from xvision_model.tiny import build_tiny_model
from tiny_models import randomise

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")


@pytest.fixture(scope="module")
def model_dir(farm_store, tmp_path_factory):
    view = StoreView.open(farm_store)
    texts = [*view.records()["analysis"], *view.records()["analysis_fr"]]
    model = build_tiny_model(texts, in_dim=64, num_tokens=4, vocab_size=400, hidden=32, layers=2, heads=4,
                             kv_heads=2, intermediate=64, max_positions=256, lora=LoraSettings(r=4, alpha=8), seed=0)
    randomise(model, seed=1)
    out = tmp_path_factory.mktemp("tiny") / "model"
    save_model(model, out, encoder_id=view.encoder_id, profile="tiny")
    return out


@pytest.fixture(scope="module")
def chat(model_dir, farm_store):
    view = StoreView.open(farm_store)
    return XVisionChatModel(model=load_model(model_dir, merge=True).eval(), store=view, max_new_tokens=24), view


def _rid(view, parcel, date):
    records = view.records()
    return int(records[(records.parcel_id == parcel) & (records.date == date)]["record_id"].iloc[0])


def test_wrapper_generates_from_the_record_the_message_names(chat):
    model, view = chat
    rid = _rid(view, "farm-03", "2022-05-30")
    prompt = "Describe the agronomic state of this parcel."
    text = model.invoke([record_message(prompt, rid)]).content
    # The same as the generator's writer (the grammar-held text users see) called directly on that
    # record's stored embedding.
    record = view.by_ids([rid]).iloc[0].to_dict()
    direct = write_analyses(model.model, torch.from_numpy(view.vectors([rid])), [record], "en", prompt=prompt,
                            max_new_tokens=24)[0]
    assert text == direct.text and text
    assert read_classes(text).keys() >= {"vigor", "moisture", "cover"}  # every aspect, whatever was decoded
    assert "".join(chunk.content for chunk in model.stream([record_message(prompt, rid)])) == text
    other = model.invoke([record_message(prompt, _rid(view, "farm-03", "2021-03-15"))]).content
    assert other != text  # another record, other visual tokens
    with pytest.raises(InputError, match="record_id"):
        model.invoke("no record named")


def test_closing_a_stream_early_stops_the_generator_thread(chat):
    import threading

    model, view = chat
    before = threading.active_count()
    stream = model.stream([record_message("Describe the agronomic state of this parcel.", _rid(view, "farm-01", "2022-05-30"))])
    first = next(stream)
    stream.close()  # what the chain's gate does on the first rejected sentence
    assert first.content and threading.active_count() == before


def test_chain_with_the_tiny_model_cites_store_values_and_gates_its_text(chat):
    model, view = chat
    plan = make_plan("farm-05 in August 2023", "describe", ["farm-05"], window("2023-08-01", "2023-08-31", "August 2023"))
    out = build_chain(view, model, parse=fixed(plan)).invoke({"question": plan.question})
    row = view.records().query("parcel_id == 'farm-05' and date == '2023-08-13'").iloc[0]
    [cite] = out["citations"]
    assert cite["date"] == "2023-08-13" and all(cite["indices"][k] == row[k] for k in cite["indices"])
    generated = model.invoke([record_message("Describe the agronomic state of this parcel.", int(row["record_id"]))]).content
    verdict = check_analysis(generated, row.to_dict())
    assert out["plan"]["analysis_source"] == ("generated" if verdict.ok else "stored")
    assert relevant_sentences(generated if verdict.ok else row["analysis"], None) in out["answer"]


def test_assistant_open_finds_the_registered_model(chat, model_dir, farm_store, tmp_path):
    import shutil

    store = tmp_path / "store"
    shutil.copytree(farm_store, store)
    shutil.copytree(model_dir, store / "model")  # a store's registered model: its model/ folder
    assistant = Assistant.open(store, parse=fixed(make_plan("farm-01 on 2023-05-30", "describe", ["farm-01"],
                                                            window("2023-05-30"))))
    assert assistant.choice.origin == "registered"
    result = assistant.ask("farm-01 on 2023-05-30")
    assert any("registered model" in n for n in result["plan"]["notes"])
    assert result["plan"]["analysis_source"] in ("generated", "stored")
    pieces = list(assistant.stream("farm-01 on 2023-05-30"))
    assert "".join(pieces) == assistant.last_result["answer"] == result["answer"]


def test_a_model_of_another_encoder_is_not_used(model_dir, farm_store, tmp_path):
    import json
    import shutil

    other = tmp_path / "other-model"
    shutil.copytree(model_dir, other)
    card = json.loads((other / "model_card.json").read_text())
    (other / "model_card.json").write_text(json.dumps({**card, "encoder": "croma-large"}))
    plan = make_plan("farm-01 on 2023-05-30", "describe", ["farm-01"], window("2023-05-30"))
    assistant = Assistant.open(farm_store, other, parse=fixed(plan))
    assert assistant.choice.origin == "none"
    result = assistant.ask("farm-01 on 2023-05-30")
    assert any("does not fit this store" in w and "croma-large" in w for w in result["warnings"])
    assert any("composed from the records' own analyses" in n for n in result["plan"]["notes"])
    assert result["plan"]["analysis_source"] == "stored" and "Parcel farm-01 on 2023-05-30" in result["answer"]


def test_a_model_with_a_chat_template_reads_the_whole_conversation(chat):
    from langchain_core.messages import SystemMessage

    model, view = chat
    tokenizer = model.model.tokenizer
    saved = getattr(tokenizer, "chat_template", None)
    tokenizer.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                               "{% if add_generation_prompt %}assistant:{% endif %}")
    try:
        assert model.chat_template
        rid = _rid(view, "farm-02", "2022-05-30")
        messages = [SystemMessage(content="Records: parcel farm-02 ..."), record_message("How is farm-02?", rid)]
        text = model.invoke(messages).content
        ids = tokenizer.apply_chat_template([{"role": "system", "content": "Records: parcel farm-02 ..."},
                                             {"role": "user", "content": "How is farm-02?"}],
                                            add_generation_prompt=True, tokenize=True)["input_ids"]
        direct = model.model.generate(torch.from_numpy(view.vectors([rid])), [list(ids)], max_new_tokens=24)[0]
        assert text == tokenizer.decode(direct, skip_special_tokens=True)
    finally:
        tokenizer.chat_template = saved


def test_writer_role_follows_the_model_card():
    from assistant.api import writer_of

    assert writer_of({"profile": "tiny", "base_model": "base"}, False) == "analysis"
    assert writer_of({"profile": "full", "base_model": "Qwen/Qwen2-1.5B"}, True) == "analysis"  # base LM, own template
    assert writer_of({"profile": "full", "base_model": "Qwen/Qwen2-1.5B-Instruct"}, True) == "answer"
    assert writer_of({"base_model": "Qwen/Qwen2-1.5B-Instruct"}, False) == "analysis"
    assert writer_of({"writer": "answer"}, False) == "answer"


def test_a_batch_written_at_once_is_what_invoke_writes_one_by_one(chat):
    model, view = chat
    rids = [_rid(view, "farm-03", "2022-05-30"), _rid(view, "farm-03", "2021-03-15"), _rid(view, "farm-01", "2022-05-30")]
    prompt = "Describe the agronomic state of this parcel."
    records = [view.by_ids([rid]).iloc[0].to_dict() for rid in rids]
    batch = model.write_batch(torch.from_numpy(view.vectors(rids)), records, "en", prompt=prompt)
    assert batch == [model.invoke([record_message(prompt, rid)]).content for rid in rids]


def test_an_analysis_asked_for_some_aspects_ends_once_it_has_stated_them(chat):
    # The answer shows vigor, moisture and cover (or the class of the index asked): the generator
    # stops at the sentence by which it has stated them, the same text streamed, invoked or batched.
    model, view = chat
    prompt = "Describe the agronomic state of this parcel."
    rids = [_rid(view, "farm-03", "2022-05-30"), _rid(view, "farm-01", "2022-05-30")]
    records = [view.by_ids([rid]).iloc[0].to_dict() for rid in rids]
    features = torch.from_numpy(view.vectors(rids))
    for aspects in ({"vigor", "moisture", "cover"}, {"vigor"}):
        batch = model.write_batch(features, records, "en", prompt=prompt, aspects=[aspects] * len(rids))
        for rid, batched in zip(rids, batch):
            whole = model.invoke([record_message(prompt, rid)]).content
            message = record_message(prompt, rid, aspects=aspects)
            invoked = model.invoke([message]).content
            streamed = "".join(str(c.content) for c in model.stream([message]))
            assert invoked == streamed == batched
            assert whole.startswith(invoked)
            sentences = re.split(r"(?<=[.!?])\s+", invoked)
            stated = set(read_classes(invoked))
            if aspects <= set(read_classes(whole)):
                assert aspects <= stated and not aspects <= set(read_classes(" ".join(sentences[:-1])))
            else:
                assert invoked == whole


def test_a_lazy_chat_model_loads_its_model_once_at_the_first_generation(model_dir, farm_store):
    view = StoreView.open(farm_store)
    loads = []

    def loader():
        loads.append(1)
        return load_model(model_dir, merge=True).eval()

    lazy = XVisionChatModel(store=view, loader=loader, has_chat_template=False, max_new_tokens=24)
    assert not lazy.loaded and lazy.load_seconds is None and not lazy.chat_template and not loads
    rid = _rid(view, "farm-03", "2022-05-30")
    first = lazy.invoke([record_message("Describe the agronomic state of this parcel.", rid)]).content
    again = lazy.invoke([record_message("Describe the agronomic state of this parcel.", rid)]).content
    assert first == again and first and loads == [1] and lazy.loaded and lazy.load_seconds > 0
    with pytest.raises(InputError, match="model or a loader"):
        XVisionChatModel(store=view)
