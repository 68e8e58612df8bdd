"""The rule catalogue: one module per area, concatenated in a fixed order.

Rule ids are stable and never reused; a retired rule stays, marked retired.
"""

from mlwarden.rules.assess import ATTACK_RULES
from mlwarden.rules.audit import AUDIT_RULES
from mlwarden.rules.data import DATA_RULES, PII_RULES
from mlwarden.rules.detect import DET_RULES
from mlwarden.rules.fl import FL_RULES
from mlwarden.rules.packages import PACKAGE_RULES
from mlwarden.rules.scan import SCAN_RULES
from mlwarden.rules.signing import SIGNING_RULES
from mlwarden.rules.update import UPDATE_RULES
from mlwarden.taxonomy import Rule

RULES: tuple[Rule, ...] = (
    SCAN_RULES
    + PACKAGE_RULES
    + SIGNING_RULES
    + AUDIT_RULES
    + DATA_RULES
    + PII_RULES
    + DET_RULES
    + ATTACK_RULES
    + UPDATE_RULES
    + FL_RULES
)

__all__ = ["RULES"]
