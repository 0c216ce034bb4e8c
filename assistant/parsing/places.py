"""Places in a question -> `Places`: parcel ids, attribute values, points, areas.

Rules (the plan's notes say which applied):

- Parcel ids are matched as stored (case-insensitive), or after a parcel word ("parcel 12",
  "field 001", "parcelle 7", "plots 3 and 5", "#12") against the end of the stored ids: the
  token itself, or the trailing number of an id compared as a number ("12" = "...-012"). When
  several ids end that way the mention is ambiguous and left unresolved (the note lists them).
- Attribute values ("the maize fields", "winter wheat", "les parcelles de betterave") are matched
  against every text value of the store's `attr_*` columns, ignoring case, accents and plural
  endings, through a small EN/FR crop lexicon ("blé d'hiver" = winter wheat, "maïs" = maize,
  "corn" = maize, "betterave" = beet, "pomme de terre" = potato, "prairie" = grass ...). An
  exact value wins over values that only contain the words ("barley" = Barley, not Winter barley;
  "wheat" = Winter wheat when no value is just "wheat"); the words of one lexicon entry match
  together ("blé dur" = durum wheat, not Winter wheat). Numeric values (codes, areas) are never
  matched. A crop word that matches no stored value ("the rice fields") is an unresolved place.
- Coordinates: decimal degrees ("50.746, 4.063", "50.746N 4.063E", "lat 50.746 lon 4.063") or
  degrees-minutes(-seconds) ("50°44'46\"N 4°03'47\"E"). A pair without hemisphere letters or
  labels is read latitude first (the order of maps and GPS apps) unless the first cannot be a
  latitude, or unless only the swapped order lies within 50 km of the store's parcels.
  A point resolves to the parcel that contains it, else to the nearest parcel within
  `SNAP_DISTANCE_M` (100 m) or within the distance the question states ("the parcel nearest to
  <point> within 300 m"); otherwise it stays a point, unresolved, with the nearest parcel and its
  distance in the notes.
- Areas: "within 2 km of <parcel or point>" ("à moins de 2 km de", "dans un rayon de 500 m
  autour de") -> `point` + `radius_m` (a parcel anchor stands for its representative point);
  "bbox 4.05,50.74,4.07,50.75" -> `bbox` (min lon, min lat, max lon, max lat; the order of
  GeoJSON and STAC); "all parcels", "every field", "toutes les parcelles" -> `all_parcels`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from assistant.plan import StoreContext
from assistant.parsing.text import blank, fold, source_span

SNAP_DISTANCE_M = 100.0
_SWAP_DISTANCE_M = 50_000.0

# ----------------------------------------------------------------------------- crop words
#: Folded, singular phrases -> canonical English words. Applied to the question and to the
#: stored values alike, so a store with French values answers English questions and back.
CROP_LEXICON: dict[str, str] = {
    "ble d'hiver": "winter wheat", "ble tendre d'hiver": "winter wheat", "froment d'hiver": "winter wheat",
    "ble": "wheat", "froment": "wheat", "ble dur": "durum wheat",
    "orge d'hiver": "winter barley", "escourgeon": "winter barley", "orge de printemps": "spring barley",
    "orge": "barley",
    "maize": "maize", "maiz": "maize", "corn": "maize",
    "betterave sucriere": "sugar beet", "betterave a sucre": "sugar beet", "sugarbeet": "sugar beet",
    "betterave": "beet",
    "pomme de terre": "potato", "patate": "potato",
    "prairie permanente": "permanent grass", "prairie": "grass", "herbe": "grass", "grassland": "grass",
    "pasture": "grass", "meadow": "grass", "paturage": "grass", "gras": "grass",
    "colza": "rapeseed", "oilseed rape": "rapeseed", "canola": "rapeseed",
    "tournesol": "sunflower", "soja": "soybean", "soya": "soybean", "avoine": "oat", "seigle": "rye",
    "pois": "pea", "lin": "flax", "triticale": "triticale", "epeautre": "spelt", "luzerne": "alfalfa",
    "jachere": "fallow", "verger": "orchard", "vigne": "vineyard", "legume": "vegetable",
}
#: Words that alone say nothing about which value is meant (seasons, generic nouns).
_GENERIC = {"crop", "field", "parcel", "plot", "culture", "champ", "parcelle", "permanent", "winter",
            "spring", "summer", "autumn", "fall", "hiver", "printemps", "ete", "automne", "the",
            "of", "de", "d", "and", "et", "a", "la", "le", "du", "other", "autre", "mixed", "type"}


def _stem(word: str) -> str:
    """Singular-ish form, the same on both sides: "potatoes" = "potato", "prairies" = "prairie",
    "strawberries" = "strawberry" (a final "y" becomes "ie")."""
    if len(word) > 4 and word.endswith("oes"):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    if len(word) > 3 and word.endswith("y"):
        word = word[:-1] + "ie"
    return word


_TOKEN = re.compile(r"[a-z0-9]+")
_LEX = sorted(((tuple(_stem(w) for w in _TOKEN.findall(k)), tuple(_stem(w) for w in v.split()))
               for k, v in CROP_LEXICON.items()),
              key=lambda kv: -len(kv[0]))


def canonical_tokens(folded: str) -> list[tuple[str, int, int]]:
    """Stemmed tokens of a folded text with the lexicon applied: (token, start, end) spans."""
    raw = [(_stem(m.group()), m.start(), m.end()) for m in _TOKEN.finditer(folded)]
    out: list[tuple[str, int, int]] = []
    i = 0
    while i < len(raw):
        for key, value in _LEX:
            n = len(key)
            if tuple(t for t, _, _ in raw[i:i + n]) == key:
                out.extend((w, raw[i][1], raw[i + n - 1][2]) for w in value)
                i += n
                break
        else:
            out.append(raw[i])
            i += 1
    return out


def _is_number(value: str) -> bool:
    return bool(re.fullmatch(r"[-+]?\d+(?:[.,]\d+)?", value.strip()))


def _is_text_value(value: str) -> bool:
    # Codes ("1110", "2019_BE_LPIS-Flanders_POLY_110") match only exactly, never word by word.
    return bool(re.fullmatch(r"[^\W\d_]+(?:[\s'-][^\W\d_]+)*", value))


# ----------------------------------------------------------------------------- the reading
@dataclass
class PlaceReading:
    parcel_ids: list[str] = field(default_factory=list)
    attributes: dict[str, list[str]] = field(default_factory=dict)
    point: tuple[float, float] | None = None
    radius_m: float | None = None
    bbox: tuple[float, float, float, float] | None = None
    all_parcels: bool = False
    unresolved: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    text: str = ""
    nearest: tuple[str, float] | None = None


_PARCEL_WORD = r"(?:parcels?|fields?|plots?|parcelles?|champs?|ilots?)"
# A reference is not the day of a numeric date ("parcels 16/05/2019") nor an ISO date ("plot 8,
# 2019-06-20").
_REF = r"(?!\d{4}-\d{1,2}-\d{1,2}\b)(?=[\w-]*\d)[a-z0-9][\w-]*(?![\w-])(?![/.]\d)"
_PARCEL_LIST = re.compile(
    rf"\b{_PARCEL_WORD}\s*(?:(?:no\.?|nr\.?|n°|number|numero|num\.?|id)\s*)?[:#]?\s*"
    rf"(?P<list>{_REF}(?:\s*(?:,|&|\band\b|\bet\b|\bor\b|\bou\b)\s*(?:{_PARCEL_WORD}\s+)?{_REF})*)")
_HASH = re.compile(r"(?<![\w#])#\s?(\d+)\b")
#: A bare number after a likeness word names a parcel: "most similar to 7", "look like number 7",
#: "ressemble le plus à la 7", "comme la 12" (not "similar to 0.7", "like 20 %", "like 2019").
_LIKE_REF = re.compile(
    r"\b(?:similar\s+to|like|as|resembl\w*|ressembl\w*(?:\s+le\s+plus)?\s+a|comme|proches?\s+de|"
    r"(?:semblables?|similaires?|comparables?)\s+a)\s+(?:the\s+|la\s+|le\s+|l'\s*)?(?:(?:number|no\.?|n°|numero)\s*)?"
    r"(?P<ref>\d{1,4})\b(?![.,/]\d|\s*(?:%|percent|pour\s*cent|km|m\b|ha\b|days?|jours?))")


def _resolve_ref(token: str, ctx: StoreContext) -> tuple[list[str], str | None]:
    """Ids matching a prefix-less reference, and a note when it is ambiguous or unknown."""
    tok = token.lower()
    exact = [p for p in ctx.parcel_ids if p.lower() == tok]
    if exact:
        return exact, None
    cands = []
    for pid in ctx.parcel_ids:
        low = pid.lower()
        tail = re.split(r"[-_ ./:]", low)[-1]
        digits = re.search(r"(\d+)$", low)
        if tail == tok or low.endswith(("-" + tok, "_" + tok, "." + tok, "/" + tok)):
            cands.append(pid)
        elif tok.isdigit() and digits and int(digits.group(1)) == int(tok):
            cands.append(pid)
    if len(cands) == 1:
        return cands, None
    if cands:
        return [], f"parcel {token!r} is ambiguous: " + ", ".join(cands[:8])
    return [], None


def _meters(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    from pyproj import Geod

    return abs(Geod(ellps="WGS84").inv(lon1, lat1, lon2, lat2)[2])


def _distance_to(ctx: StoreContext, pid: str, lon: float, lat: float) -> float:
    """Metres from (lon, lat) to the parcel (0 inside), in a local azimuthal projection."""
    geom = ctx.geometries.get(pid)
    if geom is None:
        plon, plat = ctx.points[pid]
        return _meters(lon, lat, plon, plat)
    from pyproj import Transformer
    from shapely.geometry import Point
    from shapely.ops import transform

    local = Transformer.from_crs("EPSG:4326", f"+proj=aeqd +lat_0={lat} +lon_0={lon} +units=m", always_xy=True)
    return float(transform(local.transform, geom).distance(Point(0.0, 0.0)))


def _near_store(ctx: StoreContext, lon: float, lat: float) -> float:
    if not ctx.points:
        return math.inf
    return min(_meters(lon, lat, x, y) for x, y in ctx.points.values())


_HEMI = r"[nsewo]"
_DMS = (r"(?P<{p}d>\d{{1,3}}(?:[.,]\d+)?)\s*(?:°|deg\b|d(?=\s*\d))\s*"
        r"(?:(?P<{p}m>\d{{1,2}}(?:[.,]\d+)?)\s*(?:'|m(?=\s*\d)|min\b)\s*"
        r"(?:(?P<{p}s>\d{{1,2}}(?:[.,]\d+)?)\s*(?:\"|''|s\b))?)?\s*(?P<{p}h>{h})?\b")
_DMS_PAIR = re.compile(_DMS.format(p="a", h=_HEMI) + r"\s*[,;/]?\s*(?:and\s+|et\s+)?" + _DMS.format(p="b", h=_HEMI))
_DEC_HEMI = re.compile(r"(?P<a>-?\d{1,3}(?:[.,]\d+)?)\s*°?\s*(?P<ah>[nsewo])\b\s*[,;/]?\s*(?P<b>-?\d{1,3}(?:[.,]\d+)?)\s*°?\s*(?P<bh>[nsewo])\b")
_LABELLED = re.compile(
    r"\b(?P<k1>lat(?:itude)?|lon(?:gitude)?|lng)\s*[:=]?\s*(?P<a>-?\d{1,3}(?:\.\d+)?)\s*°?\s*[,;/]?\s*(?:and\s+|et\s+)?"
    r"(?P<k2>lat(?:itude)?|lon(?:gitude)?|lng)\s*[:=]?\s*(?P<b>-?\d{1,3}(?:\.\d+)?)")
_BARE = re.compile(r"(?<![\w.])(?P<a>-?\d{1,3}\.\d{2,})\s*°?\s*[,;/ ]\s*(?P<b>-?\d{1,3}\.\d{2,})\b(?![.]\d)")
#: One decimal is a coordinate only after a word of place ("near 50.7, 4.1"); alone, "0.3, 0.5"
#: could be thresholds. The point starts at group "a".
_NEAR_BARE = re.compile(r"\b(?:near|at|around|close\s+to|pres\s+de|autour\s+de|vers|coordinates?|coordonnees|location|"
                        r"position)\s*:?\s+(?P<a>-?\d{1,3}\.\d+)\s*°?\s*[,;/ ]\s*(?P<b>-?\d{1,3}\.\d+)\b(?![.]\d)")
_BBOX = re.compile(
    r"\b(?:bbox|bounding\s+box|box|emprise|rectangle|boite(?:\s+englobante)?)\s*(?:of|de|=|:)?\s*[\[(]?\s*"
    r"(?P<n>-?\d{1,3}(?:\.\d+)?(?:\s*[,;]\s*|\s+)-?\d{1,3}(?:\.\d+)?(?:\s*[,;]\s*|\s+)-?\d{1,3}(?:\.\d+)?"
    r"(?:\s*[,;]\s*|\s+)-?\d{1,3}(?:\.\d+)?)\s*[\])]?")
_RADIUS = re.compile(
    r"\b(?:within|in\s+a\s+radius\s+of|a\s+radius\s+of|less\s+than|up\s+to|no\s+more\s+than|under|"
    r"a\s+moins\s+de|dans\s+un\s+rayon\s+de|rayon\s+de|moins\s+de)\s+(?P<n>\d+(?:[.,]\d+)?)\s*"
    r"(?P<u>km|kilometres?|kilometers?|m|metres?|meters?)\b\s*(?:(?:of|from|around|autour\s+d[eu]|de|du|d'|des|from\s+the|of\s+the|de\s+la|la|the)\s*)*")
_ALL = re.compile(
    r"\b(?:all|every|each)\s+(?:the\s+|of\s+the\s+)?(?:parcels?|fields?|plots?)\b|\b(?:the\s+)?whole\s+(?:farm|area|store|archive)\b|"
    r"\btou(?:te)?s\s+les\s+(?:parcelles|champs)\b|\bchaque\s+(?:parcelle|champ)\b|\bl'ensemble\s+des\s+(?:parcelles|champs)\b|"
    r"\btoute\s+l'exploitation\b|\bevery\s*where\b|\bpartout\b")


def _deg(d: str, m: str | None, s: str | None) -> float:
    val = float(d.replace(",", "."))
    if m:
        val += float(m.replace(",", ".")) / 60
    if s:
        val += float(s.replace(",", ".")) / 3600
    return val


def _sign(value: float, hemi: str | None) -> float:
    return -abs(value) if hemi in ("s", "w", "o") else value


def _order(a: float, ah: str | None, b: float, bh: str | None, ctx: StoreContext,
           notes: list[str]) -> tuple[float, float] | None:
    """(lon, lat) from two numbers and optional hemisphere letters."""
    if ah in ("e", "w", "o") or bh in ("n", "s"):
        lon, lat = _sign(a, ah), _sign(b, bh)
    elif ah in ("n", "s") or bh in ("e", "w", "o"):
        lat, lon = _sign(a, ah), _sign(b, bh)
    else:
        lat, lon = a, b
        if abs(lat) > 90 >= abs(lon):
            lat, lon = lon, lat
        elif abs(lon) <= 90 and _near_store(ctx, lon, lat) > _SWAP_DISTANCE_M >= _near_store(ctx, lat, lon):
            lat, lon = lon, lat
            notes.append("coordinates read longitude first: only that order lies near the store's parcels")
    if abs(lat) > 90 or abs(lon) > 180:
        return None
    return lon, lat


def read_places(text: str, ctx: StoreContext, original: str | None = None) -> PlaceReading:
    """Read the places of the folded `text`; blank what was understood. `original` (the question
    before folding) lets unresolved places be quoted in the question's own words."""
    out = PlaceReading()
    own = (lambda a, b: source_span(original, text, a, b)) if original is not None else (lambda a, b: text[a:b].strip())
    work = text
    # bbox first: its four numbers are not coordinates pairs.
    if m := _BBOX.search(work):
        nums = [float(x) for x in re.split(r"[\s,;]+", m["n"].strip())]
        xs, ys = sorted(nums[0::2]), sorted(nums[1::2])
        if abs(ys[0]) > 90 or abs(ys[1]) > 90:
            out.notes.append(f"not a bounding box (latitude out of range): {m.group().strip()!r}")
        else:
            out.bbox = (xs[0], ys[0], xs[1], ys[1])
        work = blank(work, m.start(), m.end())
    # Radius phrase: remember where it ends, its anchor comes right after.
    radius_end = None
    if m := _RADIUS.search(work):
        n = float(m["n"].replace(",", "."))
        out.radius_m = n * 1000 if m["u"].startswith("k") else n
        radius_end = m.end()
        work = blank(work, m.start(), m.end())
    points: list[tuple[int, tuple[float, float], str]] = []
    for pattern in (_DMS_PAIR, _DEC_HEMI, _LABELLED, _BARE, _NEAR_BARE):
        for m in list(pattern.finditer(work)):
            start = m.start("a") if pattern is _NEAR_BARE else m.start()
            if not work[start:m.end()].strip():
                continue
            if pattern is _DMS_PAIR:
                a, b = _deg(m["ad"], m["am"], m["as"]), _deg(m["bd"], m["bm"], m["bs"])
                pt = _order(a, m["ah"], b, m["bh"], ctx, out.notes)
            elif pattern is _DEC_HEMI:
                pt = _order(float(m["a"].replace(",", ".")), m["ah"], float(m["b"].replace(",", ".")), m["bh"],
                            ctx, out.notes)
            elif pattern is _LABELLED:
                a, b = float(m["a"]), float(m["b"])
                first_lat = m["k1"].startswith("lat")
                pt = (b, a) if first_lat else (a, b)
                pt = pt if abs(pt[1]) <= 90 and abs(pt[0]) <= 180 else None
            else:
                a, b = float(m["a"]), float(m["b"])
                if abs(a) <= 1 and abs(b) <= 1 and min(_near_store(ctx, a, b), _near_store(ctx, b, a)) > _SWAP_DISTANCE_M:
                    continue  # "0.35, 0.40" are index values, not a point in the Gulf of Guinea
                pt = _order(a, None, b, None, ctx, out.notes)
            if pt is None:
                out.notes.append(f"not a coordinate: {work[start:m.end()].strip()!r}")
            else:
                points.append((start, pt, own(start, m.end())))
            work = blank(work, start, m.end())
    # Parcel ids as stored, then prefix-less references.
    mentions: list[tuple[int, list[str], str]] = []
    for pid in sorted(ctx.parcel_ids, key=len, reverse=True):
        for m in list(re.finditer(rf"(?<![\w-]){re.escape(pid.lower())}(?![\w-])", work)):
            mentions.append((m.start(), [pid], m.group()))
            work = blank(work, m.start(), m.end())
    for m in list(_PARCEL_LIST.finditer(work)):
        for tok_m in re.finditer(_REF, m["list"]):
            tok = tok_m.group()
            pos = m.start("list") + tok_m.start()
            if re.fullmatch(r"(?:19|20)\d{2}", tok) and not _resolve_ref(tok, ctx)[0]:
                continue  # "fields in 2019" is a year, not a parcel
            ids, note = _resolve_ref(tok, ctx)
            mentions.append((pos, ids, f"parcel {tok}"))
            if note:
                out.notes.append(note)
            work = blank(work, pos, pos + len(tok))
        work = blank(work, m.start(), m.start("list"))
    for m in list(_LIKE_REF.finditer(work)):
        ids, note = _resolve_ref(m["ref"], ctx)
        if ids and not re.fullmatch(r"(?:19|20)\d{2}", m["ref"]):
            mentions.append((m.start("ref"), ids, f"parcel {m['ref']}"))
            work = blank(work, m.start("ref"), m.end("ref"))
    for m in list(_HASH.finditer(work)):
        ids, note = _resolve_ref(m[1], ctx)
        mentions.append((m.start(), ids, f"#{m[1]}"))
        if note:
            out.notes.append(note)
        work = blank(work, m.start(), m.end())
    mentions.sort(key=lambda x: x[0])
    points.sort(key=lambda x: x[0])

    # The anchor of "within r of X" is the first place right after the radius phrase.
    anchor_done = False
    if radius_end is not None:
        gap_ok = lambda pos: not re.sub(r"\b(?:parcels?|fields?|plots?|parcelles?|champs?|la|le|the|point)\b", "",
                                        text[radius_end:pos]).strip()
        for pos, pt, expr in points:
            if pos >= radius_end and gap_ok(pos):
                out.point = pt
                points = [p for p in points if p[0] != pos]
                anchor_done = True
                break
        if not anchor_done:
            for pos, ids, expr in mentions:
                if pos >= radius_end and gap_ok(pos) and ids and ids[0] in ctx.points:
                    out.point = ctx.points[ids[0]]
                    out.notes.append(f"area: within {out.radius_m:g} m of {ids[0]} (its representative point)")
                    mentions = [x for x in mentions if x[0] != pos]
                    anchor_done = True
                    break
    for pos, ids, expr in mentions:
        if ids:
            out.parcel_ids.extend(i for i in ids if i not in out.parcel_ids)
        else:
            out.unresolved.append(expr)
            if not any(expr.split()[-1] in n for n in out.notes):
                out.notes.append(f"{expr}: no such parcel in the store")
    nearest = re.search(r"\b(?:nearest|closest|le\s+plus\s+proche|la\s+plus\s+proche)\b", text)
    if nearest and out.radius_m is not None and (points or out.point is not None):
        # "the parcel nearest to <point> within 300 m": the distance is a snapping limit.
        snap, out.radius_m = out.radius_m, None
        if out.point is not None and not points:
            points = [(radius_end or 0, out.point, f"({out.point[0]:.6f}, {out.point[1]:.6f})")]
        out.point = None
        for pos, (lon, lat), expr in points:
            _resolve_point(out, ctx, lon, lat, expr, snap_m=snap)
        points = []
    for pos, (lon, lat), expr in points:
        if out.radius_m is not None and out.point is None:
            out.point = (lon, lat)
            continue
        _resolve_point(out, ctx, lon, lat, expr)
    if out.radius_m is not None and out.point is None:
        # "within 2 km" with no anchor of its own: around the (first) named parcel.
        if out.parcel_ids and out.parcel_ids[0] in ctx.points:
            out.point = ctx.points[out.parcel_ids[0]]
            out.notes.append(f"area: within {out.radius_m:g} m of {out.parcel_ids[0]} (its representative point)")
        else:
            out.notes.append(f"a radius of {out.radius_m:g} m but no place to centre it on")
            out.unresolved.append(f"within {out.radius_m:g} m")
            out.radius_m = None
    # Attribute values.
    work = _read_attributes(work, ctx, out, own)
    if m := _ALL.search(work):
        out.all_parcels = True
        work = blank(work, m.start(), m.end())
    out.text = work
    return out


def _nearest(ctx: StoreContext, lon: float, lat: float) -> tuple[float, str]:
    """(metres, parcel) of the parcel containing or nearest to the point."""
    from shapely.geometry import Point

    here = Point(lon, lat)
    inside = [pid for pid, g in ctx.geometries.items() if g.covers(here)]
    if inside:
        return 0.0, sorted(inside)[0]
    # Rough ranking in degrees (longitude scaled by cos(lat)), exact metres for the best few.
    scale = math.cos(math.radians(lat)) or 1e-9
    rough = sorted(
        (math.hypot((x - lon) * scale, y - lat) if pid not in ctx.geometries
         else ctx.geometries[pid].distance(here), pid) for pid, (x, y) in ctx.points.items())
    return min((_distance_to(ctx, pid, lon, lat), pid) for _, pid in rough[:5])


def _resolve_point(out: PlaceReading, ctx: StoreContext, lon: float, lat: float, expr: str,
                   snap_m: float = SNAP_DISTANCE_M) -> None:
    if not ctx.points:
        out.point = (lon, lat)
        out.unresolved.append(expr)
        out.notes.append(f"point ({lon:.6f}, {lat:.6f}): the store has no parcel locations")
        return
    d, pid = _nearest(ctx, lon, lat)
    if d == 0.0:
        out.notes.append(f"point ({lon:.6f}, {lat:.6f}) lies in parcel {pid}")
    elif d <= snap_m:
        out.notes.append(f"point ({lon:.6f}, {lat:.6f}) lies in no parcel; nearest is {pid}, "
                         f"{d:.0f} m away (within {snap_m:g} m)")
    else:
        out.point = out.point or (lon, lat)
        out.unresolved.append(expr)
        out.nearest = out.nearest or (pid, d)
        out.notes.append(f"point ({lon:.6f}, {lat:.6f}) lies in no parcel; nearest is {pid}, "
                         f"{d:.0f} m away (more than {snap_m:g} m)")
        return
    out.point = out.point or (lon, lat)
    if pid not in out.parcel_ids:
        out.parcel_ids.append(pid)


def _attribute_runs(ctx: StoreContext) -> dict[tuple[str, ...], list[tuple[str, str, bool]]]:
    """Value tokens -> (column, value, whole value?): every contiguous run of a text value's tokens
    indexes it. Built once per context (`StoreContext.derived`)."""
    if "attribute_runs" in ctx.derived:
        return ctx.derived["attribute_runs"]
    runs: dict[tuple[str, ...], list[tuple[str, str, bool]]] = {}
    for col, values in ctx.attributes.items():
        for value in values:
            toks = tuple(t for t, _, _ in canonical_tokens(fold(value)))
            # Numeric values (codes, areas) never match: a number in a question is a day, an id ...
            if not toks or _is_number(value):
                continue
            if not _is_text_value(value):
                runs.setdefault(toks, []).append((col, value, True))
                continue
            for i in range(len(toks)):
                for j in range(i + 1, len(toks) + 1):
                    sub = toks[i:j]
                    if all(t in _GENERIC or len(t) < 3 for t in sub):
                        continue
                    runs.setdefault(sub, []).append((col, value, sub == toks))
    ctx.derived["attribute_runs"] = runs
    return runs


def _read_attributes(work: str, ctx: StoreContext, out: PlaceReading, own) -> str:
    runs = _attribute_runs(ctx)
    if not runs:
        return _unknown_crops(work, ctx, out, own)
    longest = max(len(k) for k in runs)
    toks = canonical_tokens(work)
    i = 0
    while i < len(toks):
        for n in range(min(longest, len(toks) - i), 0, -1):
            key = tuple(t for t, _, _ in toks[i:i + n])
            hits = runs.get(key)
            # The words of one lexicon entry ("blé dur" = durum wheat) match together or not at all.
            splits = (i > 0 and toks[i - 1][1:] == toks[i][1:]) or (
                i + n < len(toks) and toks[i + n][1:] == toks[i + n - 1][1:])
            if not hits or splits:
                continue
            exact = [h for h in hits if h[2]]
            chosen = exact or hits
            # One column: the one with an exact match, else the first that contains the words.
            col = chosen[0][0]
            for c, value, _ in chosen:
                if c == col and value not in out.attributes.setdefault(col, []):
                    out.attributes[col].append(value)
            start, end = toks[i][1], toks[i + n - 1][2]
            work = blank(work, start, end)
            i += n
            break
        else:
            i += 1
    return _unknown_crops(work, ctx, out, own)


#: Crop words (canonical, stemmed) that name a crop even when the store has no such value.
_CROP_WORDS = {_stem(w) for v in CROP_LEXICON.values() for w in v.split()} - _GENERIC | {
    _stem(w) for w in ("rice", "cotton", "sorghum", "millet", "onion", "carrot", "bean", "lettuce", "tomato",
                       "hemp", "tobacco", "clover", "cabbage", "chicory", "leek", "spinach", "riz", "coton")}
_CROP_WORDS -= {"sugar", "durum", "permanent", "spring", "winter"}


def _unknown_crops(work: str, ctx: StoreContext, out: PlaceReading, own) -> str:
    """Crop words left after matching: a place the store does not hold ("the rice fields")."""
    toks = [t for t in canonical_tokens(work) if t[0] in _CROP_WORDS]
    groups: list[tuple[int, int]] = []
    for _, start, end in toks:
        if groups and not work[groups[-1][1]:start].strip():
            groups[-1] = (groups[-1][0], end)
        else:
            groups.append((start, end))
    for start, end in groups:
        said = own(start, end)
        out.unresolved.append(said)
        known = sorted({v for vals in ctx.attributes.values() for v in vals if _is_text_value(v)})
        out.notes.append(f"{said!r} matches no attribute value in the store" +
                         (f" (text values: {', '.join(known[:12])})" if known else " (the store has no text attributes)"))
        work = blank(work, start, end)
    return work
