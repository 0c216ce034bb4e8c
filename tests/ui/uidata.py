"""Constants of the app tests (a module of its own: test files import it, conftest too)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FLANDERS = REPO / "data" / "worldcereal-flanders"
HESBAYE = REPO / "data" / "worldcereal-hesbaye"
#: Clear and clouded dates, and the October pair a year apart that the past-season comparison needs.
DATES = ("2018-08-04", "2018-08-14", "2018-10-13", "2019-03-22", "2019-05-16", "2019-07-25",
         "2019-08-14", "2019-10-13", "2019-10-18")
PARCEL = "Flanders31UES-001"  # winter wheat in 2019
