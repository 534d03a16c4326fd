"""The chart of accounts as data: which account each line of each event posts to.

A chart is a list of rules ``(event, role, revenue kind, VAT treatment, country) -> account`` with
``*`` for "any"; the most specific rule that matches wins (ties: the first). Customers post to
personal debtor accounts (DATEV's range: account length + 1 digits, 10000–69999 at length 4) or to
one control account, the tenant's choice. A chart is checked complete when it is set: every line
an event can post, for every revenue kind and every VAT treatment the tenant's rulesets use, must
find a rule. Nothing ever falls through to a suspense account; posting with no rule is an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from runtime.accounting.journal import EVENT_ROLES, FX_ROLES, REVENUE_KINDS
from runtime.tax import UNTAXED_CATEGORIES

__all__ = [
    "ANY",
    "TEMPLATES",
    "Chart",
    "ChartError",
    "MappingMissing",
    "Rule",
    "debtor_range",
    "template",
]

ANY: Final = "*"
# the roles whose lines are split by revenue kind and/or VAT treatment
_BY_KIND: Final = {"revenue"}
_BY_VAT: Final = {"revenue", "vat", "input_vat", "input_vat_13b", "vat_13b"}


class ChartError(ValueError):
    """A chart that cannot be used: a bad field, or lines no rule maps (``missing``)."""

    def __init__(self, message: str, missing: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.missing = tuple(missing)


class MappingMissing(LookupError):
    """A line to post that no rule maps: the event is refused (configuration is incomplete)."""


@dataclass(frozen=True, slots=True)
class Rule:
    event: str
    role: str
    account: str
    revenue_kind: str = ANY
    vat: str = ANY
    country: str = ANY
    bu_key: str = ""

    def matches(self, event: str, role: str, revenue_kind: str, vat: str, country: str) -> bool:
        return (self.role == role and self.event in (ANY, event) and self.revenue_kind in (ANY, revenue_kind)
                and self.vat in (ANY, vat) and self.country in (ANY, country))

    @property
    def specificity(self) -> int:
        return sum(v != ANY for v in (self.event, self.revenue_kind, self.vat, self.country))

    def to_dict(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in self.__slots__}


def debtor_range(account_length: int) -> tuple[int, int]:
    """DATEV's debtor accounts: one digit longer than the G/L accounts, 1xxxx to 6xxxx."""
    return 10 ** account_length, 7 * 10 ** account_length - 1


@dataclass(frozen=True, slots=True)
class Chart:
    """``debtors``: ``personal`` (one account per customer) or ``control`` (the debtor rule's
    account for everyone). ``datev_vat``: ``separate`` (VAT lines exported as rows of their own)
    or ``automatic`` (the revenue accounts are DATEV automatic accounts: a VAT line is folded into
    the revenue rows of its rate and DATEV computes the VAT from the gross)."""

    name: str
    rules: tuple[Rule, ...]
    debtors: str = "control"
    account_length: int = 4
    datev_vat: str = "separate"
    skr: str = ""  # "03" | "04" | "" for the DATEV header
    names: Mapping[str, str] = field(default_factory=dict)  # account -> label (documentation, exports)
    consultant: int = 1001  # DATEV Beraternummer
    client: int = 1  # DATEV Mandantennummer
    fiscal_year_start: int = 1  # the month the fiscal year starts in
    # resolved rules by (event, role, revenue kind, VAT, country): posting asks the same few
    # questions for every entry of a month
    _resolved: dict[tuple[str, str, str, str, str], Rule] = field(default_factory=dict, init=False, compare=False,
                                                                  repr=False)

    def __post_init__(self) -> None:
        if self.debtors not in ("personal", "control"):
            raise ChartError(f"debtors are 'personal' or 'control', not {self.debtors!r}")
        if not 4 <= self.account_length <= 8:
            raise ChartError(f"the account length is 4 to 8 digits, not {self.account_length}")
        if self.datev_vat not in ("separate", "automatic"):
            raise ChartError(f"datev_vat is 'separate' or 'automatic', not {self.datev_vat!r}")
        if not (1001 <= self.consultant <= 9999999 and 1 <= self.client <= 99999):
            raise ChartError("DATEV consultant numbers run 1001–9999999, client numbers 1–99999")
        if not 1 <= self.fiscal_year_start <= 12:
            raise ChartError(f"the fiscal year starts in a month 1–12, not {self.fiscal_year_start}")
        for r in self.rules:
            if r.event != ANY and r.event not in EVENT_ROLES:
                raise ChartError(f"unknown event {r.event!r} (known: {', '.join(EVENT_ROLES)})")
            if r.role not in FX_ROLES and not any(r.role in roles for roles in EVENT_ROLES.values()):
                raise ChartError(f"unknown role {r.role!r}")
            if r.revenue_kind != ANY and r.revenue_kind not in REVENUE_KINDS:
                raise ChartError(f"unknown revenue kind {r.revenue_kind!r} (known: {', '.join(REVENUE_KINDS)})")
            if r.account != "debtor" and not (r.account.isdigit() and len(r.account) <= self.account_length + 1):
                raise ChartError(f"account {r.account!r} is not a number of at most "
                                 f"{self.account_length + 1} digits")
            if r.account == "debtor" and r.role != "customer_credit":
                raise ChartError("only customer credit can post to the customer's debtor account ('debtor')")

    def resolve(self, event: str, role: str, revenue_kind: str = "", vat: str = "", country: str = "") -> Rule:
        key = (event, role, revenue_kind, vat, country)
        got = self._resolved.get(key)
        if got is None:
            got = self._resolved[key] = self._resolve(*key)
        return got

    def _resolve(self, event: str, role: str, revenue_kind: str, vat: str, country: str) -> Rule:
        best: Rule | None = None
        for r in self.rules:
            if r.matches(event, role, revenue_kind or ANY, vat or ANY, country or ANY) and (
                    best is None or r.specificity > best.specificity):
                best = r
        if best is None:
            raise MappingMissing(_what(event, role, revenue_kind, vat, country))
        return best

    def missing(self, vat_treatments: Iterable[str], country: str = "", foreign: bool = False) -> list[str]:
        """The lines no rule maps, for the given VAT treatments (e.g. ``["19", "7"]``) and country;
        with ``foreign`` (a tenant with accounts in other currencies than its functional one) the
        exchange differences too."""
        out: list[str] = []
        vats = sorted(set(vat_treatments))
        for event, roles in EVENT_ROLES.items():
            for role in (*roles, *(FX_ROLES if foreign else ())):
                if role == "debtor" and self.debtors == "personal":
                    continue
                kinds = REVENUE_KINDS if role in _BY_KIND else ("",)
                for kind in kinds:
                    # an untaxed treatment (AE, O, E) posts revenue and no VAT line
                    for vat in ([v for v in vats if role == "revenue" or v not in UNTAXED_CATEGORIES]
                                if role in _BY_VAT else [""]):
                        try:
                            self.resolve(event, role, kind, vat, country)
                        except MappingMissing as e:
                            out.append(str(e))
        return out

    def check_complete(self, vat_treatments: Iterable[str], country: str = "", foreign: bool = False) -> None:
        gaps = self.missing(vat_treatments, country, foreign)
        if gaps:
            raise ChartError(f"the chart maps no account for {len(gaps)} line(s): {gaps[0]}"
                             + (f" (and {len(gaps) - 1} more)" if len(gaps) > 1 else ""), gaps)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "debtors": self.debtors, "account_length": self.account_length,
                "datev_vat": self.datev_vat, "skr": self.skr, "names": dict(self.names),
                "consultant": self.consultant, "client": self.client, "fiscal_year_start": self.fiscal_year_start,
                "rules": [r.to_dict() for r in self.rules]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Chart:
        try:
            rules = tuple(Rule(**{k: str(v) for k, v in r.items()}) for r in d.get("rules", ()))
        except TypeError as e:
            raise ChartError(f"a rule has an unknown field: {e}") from None
        try:
            return cls(str(d.get("name", "custom")), rules, str(d.get("debtors", "control")),
                       int(d.get("account_length", 4)), str(d.get("datev_vat", "separate")), str(d.get("skr", "")),
                       {str(k): str(v) for k, v in dict(d.get("names", {})).items()},
                       int(d.get("consultant", 1001)), int(d.get("client", 1)), int(d.get("fiscal_year_start", 1)))
        except (TypeError, ValueError) as e:
            if isinstance(e, ChartError):
                raise
            raise ChartError(f"a chart field has the wrong type: {e}") from None


def _what(event: str, role: str, revenue_kind: str, vat: str, country: str) -> str:
    dims = [f"event '{event}'", f"role '{role}'"]
    if revenue_kind:
        dims.append(f"revenue kind '{revenue_kind}'")
    if vat:
        dims.append(f"VAT '{vat}'")
    if country:
        dims.append(f"country '{country}'")
    return ", ".join(dims)


def _rules(*rows: tuple[str, ...]) -> tuple[Rule, ...]:
    out = []
    for row in rows:
        event, role, account, *rest = row
        kind, vat = (rest + [ANY, ANY])[:2]
        out.append(Rule(event, role, account, kind, vat))
    return tuple(out)


# A plain chart for tenants outside Germany (and the default): one account per purpose, every VAT
# treatment and revenue kind covered, so it is complete for any ruleset.
_PLAIN = Chart("plain", _rules(
    (ANY, "debtor", "1200"),
    (ANY, "customer_credit", "2300"),
    (ANY, "bank", "1000"),
    (ANY, "return_charge", "4950"),
    (ANY, "payout", "2400"),
    (ANY, "dunning_income", "4850"),
    (ANY, "interest_income", "4860"),
    (ANY, "fx_gain", "4870"),
    (ANY, "fx_loss", "6870"),
    (ANY, "bad_debt", "6800"),
    (ANY, "vat", "2200"),
    (ANY, "expense", "5100"),
    (ANY, "input_vat", "1500"),
    (ANY, "partner_payable", "2500"),
    (ANY, "input_vat_13b", "1510"),
    (ANY, "vat_13b", "2210"),
    (ANY, "revenue", "4000", "charging"),
    (ANY, "revenue", "4100", "subscription"),
    (ANY, "revenue", "4200", "service"),
    (ANY, "revenue", "4900", "discount"),
    (ANY, "revenue", "4800", "other"),
), debtors="control", names={
    "1000": "Bank", "1200": "Accounts receivable", "2200": "VAT payable", "2300": "Customer credit balances",
    "4000": "Charging revenue", "4100": "Subscription revenue", "4200": "Service revenue",
    "4800": "Other revenue", "4900": "Discounts granted", "4950": "Return charges recovered",
    "2400": "Refunds payable", "4850": "Dunning fees", "4860": "Interest income", "6800": "Bad debts written off",
    "5100": "Host credits (revenue share, energy reimbursement)", "1500": "Input VAT",
    "2500": "Partner credits payable", "4870": "Exchange gains", "6870": "Exchange losses",
    "1510": "Input VAT self-assessed (reverse charge)", "2210": "VAT payable self-assessed (reverse charge)"})


def _skr(name: str, skr: str, control: str, bank: str, charge: str, transit: str, interest: str, bad_debt: str,
         fx: tuple[str, str], revenue: Mapping[str, str], discount: Mapping[str, str], vat: Mapping[str, str],
         untaxed: Mapping[str, str],
         names: Mapping[str, str], partners: tuple[str, str, Mapping[str, str]] = ("", "", {}),
         self_assessed: tuple[str, str, str, str] = ("", "", "", "")) -> Chart:
    # dunning fees and flat fees go to other operating income (the account return charges use),
    # default interest to interest income
    rows: list[tuple[str, ...]] = [
        (ANY, "debtor", control), (ANY, "customer_credit", "debtor"), (ANY, "bank", bank),
        (ANY, "return_charge", charge), (ANY, "payout", transit), (ANY, "dunning_income", charge),
        (ANY, "interest_income", interest), (ANY, "fx_gain", fx[0]), (ANY, "fx_loss", fx[1]),
        # write-offs: the net to "Forderungsverluste (übliche Höhe)", a plain expense account; the
        # VAT correction is a line of its own on the VAT account of the rate (never folded: the
        # entry has no automatic account to fold it into)
        (ANY, "bad_debt", bad_debt)]
    for rate, account in vat.items():
        rows.append((ANY, "vat", account, ANY, rate))
    for rate, account in revenue.items():
        rows.append((ANY, "revenue", account, ANY, rate))
    for rate, account in discount.items():
        rows.append((ANY, "revenue", account, "discount", rate))
    # revenue billed without VAT (AE reverse charge, O outside the scope, E exempt): one account per
    # treatment, discounts included (no VAT line; the account's own function tells DATEV the
    # VAT return's line, so no BU key)
    for treatment, account in untaxed.items():
        rows.append((ANY, "revenue", account, ANY, treatment))
    # host credit notes: third-party services (Fremdleistungen), trade payables, input VAT per rate
    expense, payable, input_vat = partners
    if expense:
        rows += [(ANY, "expense", expense), (ANY, "partner_payable", payable)]
        rows += [(ANY, "input_vat", account, ANY, rate) for rate, account in input_vat.items()]
    out = list(_rules(*rows))
    # reverse charge (§ 13b UStG): self-assessed input and output VAT (the 19 % accounts for 19 %
    # and 16 %, the accounts without a rate for the reduced rates), with the DATEV tax key that
    # makes DATEV post both from the net where the batch hands the key over
    in19, out19, in_other, out_other = self_assessed
    for rate, input_account, output_account, bu in (("19", in19, out19, _BU_13B_EU), ("16", in19, out19, _BU_13B_EU),
                                                    ("7", in_other, out_other, ""), ("5", in_other, out_other, "")):
        if input_account:
            out += [Rule(ANY, "input_vat_13b", input_account, ANY, rate, bu_key=bu),
                    Rule(ANY, "vat_13b", output_account, ANY, rate, bu_key=bu)]
    names = {**names, in19: "Abziehbare Vorsteuer nach § 13b UStG 19 %", out19: "Umsatzsteuer nach § 13b UStG 19 %",
             in_other: "Abziehbare Vorsteuer nach § 13b UStG", out_other: "Umsatzsteuer nach § 13b UStG"} \
        if in19 else names
    return Chart(name, tuple(out), debtors="personal", account_length=4, datev_vat="automatic", skr=skr,
                 names=names)


# DATEV's tax key (BU-Schlüssel) for a service taxable in Germany from a business established in
# another EU member state (§ 13b (1) UStG), 19 % input VAT and 19 % output VAT: DATEV posts both
# from the net on the record that carries it (the rate follows the date, so 16 % in the second
# half of 2020). No key is set for the reduced rate: those lines go to DATEV as they are.
_BU_13B_EU: Final = "46"

# SKR03 and SKR04 (DATEV's standard charts) for German VAT: 19 %, 7 % and the 16 % / 5 % of the
# second half of 2020. The revenue accounts are DATEV automatic accounts (8400, 8300; 4400, 4300):
# the batch gives them the gross and DATEV computes the VAT. Revenue without VAT: reverse charge to
# a business in another EU member state (AE) on 8336 / 4336 "Erlöse aus im anderen EU-Land
# steuerpflichtigen sonstigen Leistungen" (VAT return line 21 and the EC sales list), a business
# outside the EU (O) on 8338 / 4338 "Erlöse aus im Drittland steuerbaren Leistungen, im Inland nicht
# steuerbare Umsätze" (line 45), a ruleset's ``exempt`` (E) on 8100 / 4100 "Steuerfreie Umsätze
# § 4 Nr. 8 ff. UStG" (line 48). 8120 / 4120 (§ 4 Nr. 1a, exports of goods) and 8125 / 4125
# (intra-community supplies of goods) are for goods, which evbill does not bill. A tenant with other
# treatments (a tariff at 0 %) adds rules for them; the chart is refused until it does.
_SKR03 = _skr("skr03", "03", "1400", "1200", "2700", "1360", "2650", "2400", ("2660", "2150"),
              {"19": "8400", "16": "8400", "7": "8300", "5": "8300"},
              {"19": "8720", "16": "8720", "7": "8710", "5": "8710"},
              {"19": "1776", "16": "1775", "7": "1771", "5": "1773"},
              {"AE": "8336", "O": "8338", "E": "8100"},
              {"1200": "Bank", "1400": "Forderungen aus Lieferungen und Leistungen", "2700": "Sonstige Erträge",
               "1360": "Geldtransit", "2650": "Sonstige Zinsen und ähnliche Erträge",
               "2400": "Forderungsverluste (übliche Höhe)",
               "8400": "Erlöse 19 % USt", "8300": "Erlöse 7 % USt", "8720": "Erlösschmälerungen 19 % USt",
               "8710": "Erlösschmälerungen 7 % USt", "1776": "Umsatzsteuer 19 %", "1771": "Umsatzsteuer 7 %",
               "1775": "Umsatzsteuer 16 %", "1773": "Umsatzsteuer 5 %", "3100": "Fremdleistungen",
               "1600": "Verbindlichkeiten aus Lieferungen und Leistungen", "1576": "Abziehbare Vorsteuer 19 %",
               "1571": "Abziehbare Vorsteuer 7 %", "2660": "Erträge aus Kursdifferenzen",
               "2150": "Aufwendungen aus Kursdifferenzen",
               "8336": "Erlöse aus im anderen EU-Land steuerpflichtigen sonstigen Leistungen",
               "8338": "Erlöse aus im Drittland steuerbaren Leistungen, im Inland nicht steuerbare Umsätze",
               "8100": "Steuerfreie Umsätze § 4 Nr. 8 ff. UStG"},
              ("3100", "1600", {"19": "1576", "16": "1576", "7": "1571", "5": "1571"}), ("1577", "1787", "1578", "1785"))
_SKR04 = _skr("skr04", "04", "1200", "1800", "4830", "1460", "7100", "6930", ("4840", "6880"),
              {"19": "4400", "16": "4400", "7": "4300", "5": "4300"},
              {"19": "4720", "16": "4720", "7": "4710", "5": "4710"},
              {"19": "3806", "16": "3805", "7": "3801", "5": "3803"},
              {"AE": "4336", "O": "4338", "E": "4100"},
              {"1800": "Bank", "1200": "Forderungen aus Lieferungen und Leistungen", "1460": "Geldtransit",
               "4830": "Sonstige betriebliche Erträge", "7100": "Sonstige Zinsen und ähnliche Erträge",
               "6930": "Forderungsverluste (übliche Höhe)", "4400": "Erlöse 19 % USt", "4300": "Erlöse 7 % USt",
               "4720": "Erlösschmälerungen 19 % USt", "4710": "Erlösschmälerungen 7 % USt",
               "3806": "Umsatzsteuer 19 %", "3801": "Umsatzsteuer 7 %", "3805": "Umsatzsteuer 16 %",
               "3803": "Umsatzsteuer 5 %", "5900": "Fremdleistungen",
               "3300": "Verbindlichkeiten aus Lieferungen und Leistungen", "1406": "Abziehbare Vorsteuer 19 %",
               "1401": "Abziehbare Vorsteuer 7 %", "4840": "Erträge aus Kursdifferenzen",
               "6880": "Aufwendungen aus Kursdifferenzen",
               "4336": "Erlöse aus im anderen EU-Land steuerpflichtigen sonstigen Leistungen",
               "4338": "Erlöse aus im Drittland steuerbaren Leistungen, im Inland nicht steuerbare Umsätze",
               "4100": "Steuerfreie Umsätze § 4 Nr. 8 ff. UStG"},
              ("5900", "3300", {"19": "1406", "16": "1406", "7": "1401", "5": "1401"}), ("1407", "3837", "1408", "3835"))

TEMPLATES: Final[dict[str, Chart]] = {c.name: c for c in (_PLAIN, _SKR03, _SKR04)}


def template(name: str) -> Chart:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ChartError(f"no chart template {name!r} (known: {', '.join(TEMPLATES)})") from None
