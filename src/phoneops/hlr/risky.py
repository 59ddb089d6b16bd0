"""Risky operators: networks whose live numbers are blacklisted as `HLR_RISKY_NETWORK`.

The original matched `current_network_details.name` lower-cased with spaces removed against a JSON list of
269 such names (`app/utils/risky_operators.json` in zentropix/optimizer-backend). Here the list is a table
that admins edit, seeded with those 269 names (the migration inserts them; `restore_seed` puts back any
that were removed). An entry holds a network name, an MCC-MNC, or both; a number's serving network (the
current one, else the original one) is risky when its normalised name OR its MCC-MNC is on the list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.errors import Conflict, NotFound, ValidationFailed
from phoneops.core.security import Principal
from phoneops.hlr.models import HlrRiskyOperator

_MCCMNC = re.compile(r"^\d{5,6}$")
_SPACES = re.compile(r"\s+")

# The original's list, as it stored it (already normalised: lower case, no spaces), verbatim, including
# the two names whose accents it had garbled; they still match nothing else.
SEED_NAMES: tuple[str, ...] = (
    "1globaloperationsb.v.", "24sevencommunicationsltd", "3ss.a.", "888b.v.", "a1slovenija,d.d.", "acecallltd",
    "adista", "aero2sp.zo.o.", "aero2", "afoneparticipations", "ahmessp.zo.o.", "airenetworksdelmediterraneo,s.l.u.",
    "airenetworksdelmediterraneo", "airwavesolutionsltd", "alaioperadordetelecomunicaciones",
    "alaioperadordetelecomunicaciones,s.l.u.", "alandstelekommunikationab", "alphalink",
    "altatechnologiaencomunicacions", "andrews&arnoldltd", "anywheresimlimited", "apifons.a.",
    "aspidersolutionsnederlandbv", "atlasinvesto†", "avatelmovils.l.unipersonal", "bazile",
    "bbphonelevantes.l.unipersonal", "bebbicellag(nowrelarioag)", "beeonecommunicationssa",
    "bodytracenetherlandsb.v.", "bsgestoniaou", "btmobile", "btmobile-mvno", "call.comtelecomlimited", "cat",
    "cellmobilea.e.-greece", "citrustelecommunicationsltd", "claudeictpolandsp.zo.o.", "cleverenableb.v.",
    "cloud9mobilecommunicationsltd", "cludospzo.o.", "comfoneag", "communications-electronicssecuritygroup(cesg)",
    "companymobile", "compatelltd", "completel", "completelsas", "coopvoce", "corecommunicationservicesltd",
    "coretelecomlimited", "coriolistelecomsas", "cosmotemobiletelecommunicationss.a.", "cpronetworks",
    "crossmobilesp.zo.o.", "cuumacommunicationsoy", "cyfrowypolsats.a.", "cytahellassa", "digicommunicationsbelgium",
    "digicommunicationsbelgiumnv", "digicommunicationsn.v.", "digiportugalsociedadeunipessoal",
    "digiportugal,sociedadeunipessoallda", "digispaintelecom", "digispaintelecom,s.l.u.",
    "dragonetcomunicacioness.l.", "e-messagewirelessinfoservices", "elephanttalkcommunicationscorp.", "enelspa",
    "euro-informationtelecom", "euskaltel,s.a.", "ezphonemobilesp.zo.o.", "fastweb-fullmvnotim", "febotelecomltd",
    "flextellimited", "foniatelecomsp.zo.o.", "freemobiles.a.s.", "fundacjanaszawizja", "galenasp.zo.o.",
    "gammatelecomholdingsltd", "giancom", "globalcarriertelecoms.l.", "groupebfrbusiness", "guernseyairtellimited",
    "hanhaalimited", "hotmobild.o.o.", "hotmobil,telekomunikacijeinstoritved.o.o.", "hutchisondreiaustriagmbh",
    "i.m.consultingizabelamilosz", "icronnetworklimited", "iliaditalias.p.a.", "ineas.a.", "ipnordic",
    "itelsolutionssp.zo.o.", "itineovisions.a.", "itineovisions.a.(operatingascanal+polskas.a.)",
    "jerseyairtellimited", "jmdijacekmaleszko", "jt(guernsey)limited", "jt(jersey)limited",
    "klucztelekomunikacjasp.zo.o.", "koninklijkekpnn.v.", "l-mobimobilebv", "lapostemobile", "lapostetelecom",
    "legos", "linkmobilityuklimited", "linkmobilityukltd(hsl)", "linkt", "manxtelecomlimited", "manxtelecomltd.",
    "marathontelecom(uk)ltd", "massresponsegmbh", "massresponseservicegmbh",
    "meo-servicosdecomunicaťesemultimždia,s.a.ž", "meoservicoscommsemultimedia", "metroportsp.zo.o.", "mint",
    "mobiledatasp.zo.o.", "mobilevalue", "mtelaustriagmbh", "mtelschweizgmbh", "multimediapolskas.a.",
    "mvne.plsp.zo.o.", "nauprofitsp.zo.o.", "navercas.r.l.", "netcomgroupsas", "netcomgroup", "netcomgroup_f",
    "netcomgroup_o", "nethyssa", "netias.a.", "networthtelecom", "nexphoneag", "nextmobilep.s.a.",
    "nextustelecoms.r.l.", "nodemaxlimited", "nordnet", "noscomunicacoess.a.", "noscomunicacoes,s.a.",
    "nowatelefoniasp.zo.o.", "nowocommunicationss.a.", "nowocommunications,s.a.", "odidonetherlandsb.v.",
    "onitelecominfocomunicacoess.a.", "onmovildivisiontelefoniamoviltysoncarrascoinversiones,s.l.", "onofftelecom",
    "onofftelecomsas", "opencabletelecomunicaciones,s.l.", "orangebelgium", "orangebelgiums.a.",
    "orangeespagne,s.a.u.", "orangeespanavirtual", "orangeespanavirtual,s.l.u.", "oranges.a.", "oteglobesa",
    "otvartasp.zo.o.", "p4sp.zo.o.", "p4sp.zo.o.(play)", "pareteumeuropeb.v.", "pepemobiles.l.",
    "plintronitalys.r.l.", "plintronspa", "polkomtelsp.zo.o.", "polkomtelsp.zo.o.(plus)",
    "polskiesiecicyfrowesp.zo.o.", "postemobiles.p.a.", "premiummobilesp.zo.o.", "prixtel", "prixtel_o", "procono",
    "proconos.a.", "proximusnvvanpubliekrecht", "quattre", "quattreinternets.l.",
    "rcableytelecabletelecomunicaciones,s.a.u.", "rcableytelecomunicacionesgalicia", "reteferroviariaitalianas.p.a.",
    "rfi-reteferroviariaitaliana", "saltmobilesa", "satfilmsp.zo.o.iwspolnicysp.k.", "seteracommunicationsoy",
    "sewancommunications", "sewanespanacomunicaciones,s.l.u.", "sewansas", "sgts.a.", "sianetbalt",
    "sierrawirelessfrancesas", "silbo-telecomunicaciones,s.l.", "silbotelecomunicaciones", "simservice",
    "simwoodesmslimited", "sipgatewirelessgmbh", "sisnetnuevastecnologiass.l.unipersonal", "skyuklimited",
    "societefrancaiseduradiotelephone-sfr", "spaceteluklimited", "stourmarinelimited", "sudtelecom",
    "sumaoperadordetelecomunicaciones", "sumaoperadordetelecomunicaciones,s.l.u.", "sumamovilportugal,s.a.",
    "sunrisecommunicationsag", "sunrisegmbh", "suopmobiles.l.", "sure(guernsey)limited", "sure(jersey)limited",
    "swisscom(schweiz)ag", "swisscomschweizag", "syma", "symamobile", "synectivlimited", "t-2d.o.o.mobile",
    "t-2d.o.o.", "t-mobileaustriagmbh", "t-mobilepolskas.a.", "tangonetworksukltd.", "tatacommunications(uk)limited",
    "tatacommunications(uk)ltd", "tatacommunicationsmovebv", "tatacommunicationsmovenederlandb.v.", "telavox",
    "telcoleadersltd", "telcovillagegmbh", "telefonicamoviles(movistar)", "telefonicauk(virginmediao2)",
    "telegosp.zo.o.", "telekomslovenije,d.d.", "telemach", "telemachd.o.o.mobile", "telenableraps", "telenetbvba",
    "telenetgroupbvba", "telenetgroupholdingnv", "telenetgroupn.v.", "telesignmobilelimited", "telestradas.a.",
    "telewaregroupplc", "tglservices(uk)ltd", "timtelecomitaliaspa", "tismib.v.", "tismibv", "toyasp.zo.o.",
    "transatel", "truphonegmbh", "truphonelimited", "truphoneltd", "truphonepolandsp.zo.o.", "ukbroadbandlimited",
    "uni-tel(tdc)", "universityofstrathclyde", "upcpolskasp.zo.o.", "upcschweizgmbh(sunrise)", "vcompolskasp.zo.o.",
    "vectone/mundio-fullmvno", "vectras.a.", "ventocomgmbh", "vikingcopolandsp.zo.o.", "vmedo2uklimited",
    "vodafone-panafonhellenictelecommunicationscompanys.a.", "voicetecsystemsltd", "voiceworksb.v.", "voiceworksbv",
    "voiptelecom", "welcomes.p.a.", "wirelesslogiclimited", "xferamoviles", "ziggobv", "zinniatelecomunicaciones",
    "zironlimited",
)


def normalize_name(name: str) -> str:
    """The original's matching key: lower case, whitespace removed."""
    return _SPACES.sub("", name or "").lower()


def normalize_mccmnc(value: str) -> str:
    return re.sub(r"\D", "", value or "")


@dataclass(frozen=True)
class RiskyMatcher:
    names: frozenset[str]
    codes: frozenset[str]

    def match(self, network_name: str, mccmnc: str) -> bool:
        name = normalize_name(network_name)
        code = normalize_mccmnc(mccmnc)
        return bool((name and name in self.names) or (code and code in self.codes))


def load_matcher(session: Session) -> RiskyMatcher:
    rows = session.execute(select(HlrRiskyOperator.normalized, HlrRiskyOperator.mccmnc)).all()
    return RiskyMatcher(
        names=frozenset(name for name, _ in rows if name), codes=frozenset(code for _, code in rows if code)
    )


def _search(query: str | None) -> list[Any]:
    if not query:
        return []
    key = normalize_name(query)
    code = normalize_mccmnc(query)
    condition = HlrRiskyOperator.normalized.contains(key, autoescape=True)
    if code and code == query.strip():
        condition = condition | HlrRiskyOperator.mccmnc.startswith(code, autoescape=True)
    return [condition]


def list_operators(session: Session, query: str | None = None, limit: int = 1000,
                   offset: int = 0) -> list[HlrRiskyOperator]:
    statement = (select(HlrRiskyOperator).where(*_search(query))
                 .order_by(HlrRiskyOperator.normalized, HlrRiskyOperator.mccmnc, HlrRiskyOperator.id))
    return list(session.scalars(statement.limit(max(1, min(limit, 5000))).offset(max(0, offset))))


def count_operators(session: Session, query: str | None = None) -> int:
    return int(session.scalar(select(func.count(HlrRiskyOperator.id)).where(*_search(query))) or 0)


def add_operator(
    session: Session, actor: Principal, name: str = "", mccmnc: str = "", note: str | None = None
) -> HlrRiskyOperator:
    name = (name or "").strip()[:200]
    normalized = normalize_name(name)
    code = normalize_mccmnc(mccmnc)
    if mccmnc and mccmnc.strip() and not _MCCMNC.match(code):
        raise ValidationFailed("an MCC-MNC is 5 or 6 digits (e.g. 23457)")
    if not normalized and not code:
        raise ValidationFailed("give a network name, an MCC-MNC, or both")
    exists = session.scalar(
        select(HlrRiskyOperator.id).where(HlrRiskyOperator.normalized == normalized, HlrRiskyOperator.mccmnc == code)
    )
    if exists is not None:
        raise Conflict("this risky operator is already on the list", details={"id": exists})
    row = HlrRiskyOperator(
        name=name or code, normalized=normalized, mccmnc=code, note=(note or None) and note.strip()[:200],
        source="admin", created_by=actor.username,
    )
    session.add(row)
    session.flush()
    audit(session, actor, "hlr.risky_add", "hlr_risky_operator", row.id, {"name": name, "mccmnc": code})
    return row


def remove_operator(session: Session, actor: Principal, operator_id: int) -> None:
    row = session.get(HlrRiskyOperator, operator_id)
    if row is None:
        raise NotFound(f"no risky operator {operator_id}")
    audit(session, actor, "hlr.risky_remove", "hlr_risky_operator", row.id, {"name": row.name, "mccmnc": row.mccmnc})
    session.delete(row)
    session.flush()


def seed_rows(names: Iterable[str] = SEED_NAMES) -> list[dict[str, str]]:
    return [
        {"name": name, "normalized": normalize_name(name), "mccmnc": "", "source": "seed", "created_by": "system"}
        for name in names
    ]


def restore_seed(session: Session, actor: Principal) -> int:
    """Put back every seed name missing from the list (admin entries are kept); returns how many."""
    present = set(session.scalars(select(HlrRiskyOperator.normalized).where(HlrRiskyOperator.mccmnc == "")))
    missing = [name for name in SEED_NAMES if normalize_name(name) not in present]
    if missing:
        session.execute(insert(HlrRiskyOperator), seed_rows(missing))
    audit(session, actor, "hlr.risky_restore_seed", "hlr_risky_operator", None, {"restored": len(missing)})
    return len(missing)


def clear_operators(session: Session, actor: Principal) -> int:
    """Empty the list (admins, e.g. before importing their own)."""
    count = count_operators(session)
    session.execute(delete(HlrRiskyOperator))
    audit(session, actor, "hlr.risky_clear", "hlr_risky_operator", None, {"removed": count})
    return count
