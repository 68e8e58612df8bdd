"""The error tree: one base class, each subclass with a stable code.

Codes are grouped by concern (E1xx input, E2xx integrity, E3xx identity and
policy, E4xx budget, E5xx upstream, E9xx internal). A code, once published, is
never reused or renumbered: users grep logs and write CI rules against them.

Exceptions mean "could not decide". Anything that *was* decided about an
object (it is malicious, it does not parse) is a Finding in a Report instead.
"""

from __future__ import annotations

from typing import ClassVar


class MlwardenError(Exception):
    """Base of every error mlwarden raises on purpose."""

    code: ClassVar[str] = "E900"
    exit_status: ClassVar[int] = 2
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def naming(self, private: str, declared: str) -> MlwardenError:
        """The same error (class, code, hint, fields) with `private` replaced by
        `declared` in its message: readers of a private verified copy name the file the
        user gave."""
        renamed = type(self).__new__(type(self))
        renamed.__dict__.update(self.__dict__)
        renamed.message = self.message.replace(private, declared)
        renamed.args = (renamed.message,)
        return renamed

    def one_line(self) -> str:
        """The message as the CLI prints it: code, message, and the next step."""
        text = f"{self.code}: {self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text.replace("\n", " ")


# --- E1xx: input ---------------------------------------------------------------


class InputError(MlwardenError):
    """The input cannot be used as given."""

    code = "E100"
    http_status = 400


class UsageError(InputError):
    """A command line or API call that does not make sense."""

    code = "E101"


class PathNotFoundError(InputError):
    """A path named by the caller does not exist."""

    code = "E102"
    http_status = 404


class UnreadableInputError(InputError):
    """A path exists but cannot be read (permissions, a special file)."""

    code = "E103"


class UnsupportedFormatError(InputError):
    """Content whose format mlwarden does not recognise."""

    code = "E104"


class MalformedInputError(InputError):
    """Content that claims a format but does not parse as it."""

    code = "E105"


class LimitExceededError(InputError):
    """Work on the input would exceed a configured safety limit.

    `rule_id` names the finding a scan records when it meets this limit.
    """

    code = "E106"

    def __init__(self, message: str, *, rule_id: str = "ARCH003", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.rule_id = rule_id


class SymlinkEscapeError(InputError):
    """A symbolic link points outside the root being scanned or signed."""

    code = "E107"


class MissingExtraError(InputError):
    """An optional dependency is needed for this operation."""

    code = "E108"

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"this needs the optional package {package!r}",
            hint=f"pip install 'mlwarden[{extra}]'",
        )


class PolicyFileError(InputError):
    """The policy file (mlwarden.yaml) is missing, malformed or invalid."""

    code = "E110"


class OutputError(InputError):
    """A report could not be written where asked."""

    code = "E111"


# --- E2xx: integrity ----------------------------------------------------------


class IntegrityError(MlwardenError):
    """An artifact failed a check of what it is or who made it."""

    code = "E200"
    exit_status = 1
    http_status = 403


class BundleMalformedError(IntegrityError):
    """A signature bundle does not parse or is not an OpenSSF model-signing v1.0 bundle."""

    code = "E201"


class SignatureInvalidError(IntegrityError):
    """A signature does not verify with the key or certificate it names."""

    code = "E202"


class UntrustedSignerError(IntegrityError):
    """The signer is not trusted by the policy (unknown, revoked, expired, or too few)."""

    code = "E203"


class ManifestMismatchError(IntegrityError):
    """The files on disk differ from the signed manifest."""

    code = "E204"


class ScanRefusedError(IntegrityError):
    """The scan flagged the artifact, so it is not loaded."""

    code = "E205"


class UnsafeResourceNameError(IntegrityError):
    """A manifest or bundle names a resource with a path that is not allowed."""

    code = "E206"


class FileChangedError(IntegrityError):
    """A file changed while it was being hashed."""

    code = "E207"


class NotVerifiedError(IntegrityError):
    """No verified signature covers this artifact, so it is not loaded."""

    code = "E208"


class SigningKeyError(InputError):
    """A key or certificate file cannot be used (format, curve, or not a private key)."""

    code = "E112"


class UnsupportedLoadError(InputError):
    """mlwarden.load does not load this format (only formats it can load safely)."""

    code = "E113"


class DependencyFileError(MalformedInputError):
    """A requirements file or pyproject.toml does not parse or lists no dependencies table."""

    code = "E120"


class AdvisoryDatabaseError(MalformedInputError):
    """A local advisory database (an OSV export given with --advisories) does not parse."""

    code = "E121"


# E13x: the inference gateway's input guard (always a 4xx, never a 500).


class InvalidInferenceRequestError(InputError):
    """An inference request that is not a valid Open Inference Protocol v2 request."""

    code = "E130"


class ShapeMismatchError(InputError):
    """An input tensor whose shape or element count differs from the model's signature."""

    code = "E131"


class DatatypeMismatchError(InputError):
    """An input tensor whose datatype or values' type differs from the model's signature."""

    code = "E132"


class ValueOutOfRangeError(InputError):
    """An input value outside the declared range, or NaN or infinity."""

    code = "E133"


class BatchTooLargeError(InputError):
    """More rows in one request than the model's batch limit."""

    code = "E134"


class BodyTooLargeError(InputError):
    """A request body larger than the gateway's limit."""

    code = "E135"
    http_status = 413


class UnknownModelError(InputError):
    """No model of that name (or version) is served here."""

    code = "E136"
    http_status = 404


class RouteNotFoundError(InputError):
    """No endpoint at this path."""

    code = "E137"
    http_status = 404


class MethodNotAllowedError(InputError):
    """The endpoint exists but not with this HTTP method."""

    code = "E138"
    http_status = 405


# E14x: datasets given to `mlwarden data screen`.


class MissingLabelError(InputError):
    """The label column named (or a label array) is not in the dataset."""

    code = "E140"


class MixedTypesError(InputError):
    """A column or array whose values are of more than one type (numbers and text)."""

    code = "E141"


class EmptyDatasetError(InputError):
    """A dataset with no rows (an empty file, a header only, an empty folder)."""

    code = "E142"


class DatasetShapeError(InputError):
    """Arrays whose shapes do not fit together (features not 2-D, labels of another length)."""

    code = "E143"


class RowTooLargeError(InputError):
    """One row larger than the reader's limit: refused rather than read into memory."""

    code = "E144"


# --- E3xx: identity and policy -------------------------------------------------


class IdentityError(MlwardenError):
    """The caller could not be identified: no identity, no service."""

    code = "E300"
    exit_status = 1
    http_status = 401


class MissingCredentialsError(IdentityError):
    """The request carries no credential the gateway accepts."""

    code = "E301"


class InvalidTokenError(IdentityError):
    """A bearer token that does not parse, is signed wrongly, or uses a refused algorithm."""

    code = "E302"


class UntrustedIssuerError(IdentityError):
    """A token whose issuer or audience is not the configured one."""

    code = "E303"


class TokenExpiredError(IdentityError):
    """A token past its expiry or before its not-before time (beyond the clock skew)."""

    code = "E304"


class UnknownApiKeyError(IdentityError):
    """An API key that matches no stored hash."""

    code = "E305"


class UntrustedProxyHeaderError(IdentityError):
    """A client-certificate header from an address that is not a trusted proxy, or malformed."""

    code = "E306"


class UnknownClientCertificateError(IdentityError):
    """A client certificate that is invalid, expired, untrusted or mapped to no principal."""

    code = "E307"


class KeySetUnavailableError(IdentityError):
    """The JSON Web Key Set could not be fetched or parsed, so no token can be checked."""

    code = "E308"
    http_status = 503


class IdentityConfigError(InputError):
    """The identity configuration cannot be used (key files, secrets, mappings)."""

    code = "E309"


class AccessDeniedError(MlwardenError):
    """The authorization policy does not permit this action on this resource."""

    code = "E310"
    exit_status = 1
    http_status = 403


class PolicyParseError(InputError):
    """A Cedar policy file does not parse or cannot be read; the previous policy stays."""

    code = "E311"
    http_status = 500


# E35x: the audit log.


class AuditEventError(InputError):
    """An audit event that cannot be recorded canonically (a float, a wrong type, too large).

    The gateway builds events itself, so one that does not encode is its bug: a 500.
    """

    code = "E350"
    http_status = 500


class AuditStoreError(MlwardenError):
    """The audit store cannot be opened, read or written: decisions fail closed."""

    code = "E351"
    http_status = 503


class AuditBackpressureError(AuditStoreError):
    """Too many audit events wait to be written: the request is refused, not left unaudited."""

    code = "E352"


class CheckpointMalformedError(InputError):
    """An audit checkpoint file does not parse as an mlwarden audit checkpoint."""

    code = "E353"


class CheckpointSignatureError(IntegrityError):
    """An audit checkpoint's signature does not verify with the given public key."""

    code = "E354"


# --- E4xx: budget -------------------------------------------------------------


class BudgetError(MlwardenError):
    """A call was refused by a rate limit or query budget (mlwarden.budgets).

    `retry_after` is the number of seconds after which the same call may pass,
    or None when waiting cannot help.
    """

    code = "E400"
    exit_status = 1
    http_status = 429

    def __init__(
        self, message: str, *, retry_after: float | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class BudgetExceededError(BudgetError):
    """The query budget of the current period is spent for this identity and model."""

    code = "E401"


class RateLimitedError(BudgetError):
    """Calls arrive faster than the request rate allows for this identity and model."""

    code = "E402"


class BudgetStoreUnavailableError(BudgetError):
    """The budget store cannot be reached, so the call is refused (fail closed)."""

    code = "E403"
    http_status = 503


class CostTooLargeError(BudgetError):
    """One call costs more than the burst or the period budget can ever allow."""

    code = "E404"
    http_status = 400


# --- E5xx: upstream -----------------------------------------------------------


class UpstreamError(MlwardenError):
    """The model behind the gateway (an upstream server or a local model) failed."""

    code = "E500"
    http_status = 502


class UpstreamUnavailableError(UpstreamError):
    """The upstream inference server cannot be reached or answers that it is unavailable."""

    code = "E501"
    http_status = 503


class UpstreamTimeoutError(UpstreamError):
    """The upstream inference server did not answer in time."""

    code = "E502"
    http_status = 504


class UpstreamResponseError(UpstreamError):
    """The upstream inference server answered with an error or a response that does not parse."""

    code = "E503"


class ModelExecutionError(UpstreamError):
    """A local model raised while predicting on input that passed the guard."""

    code = "E504"
    http_status = 500


# --- E145-E149: data screens (representation space, baselines) -----------------


class EmbeddingShapeError(InputError):
    """A representation (model or embedding function) that is not one row of numbers per row."""

    code = "E145"


class EmbeddingValueError(InputError):
    """A representation with missing, infinite or non-numeric values."""

    code = "E146"


class EmbeddingFailedError(InputError):
    """The embedding function or model raised an error on the dataset's features."""

    code = "E147"


class NoRepresentationError(InputError):
    """A model mlwarden cannot compute a representation from (or one that does not fit the data)."""

    code = "E148"


class EmbedSpecError(InputError):
    """An embedding named as module:function that cannot be imported or is not callable."""

    code = "E149"


# --- E160-E169: runtime detectors' reference data and fitting ------------------


class ReferenceDataError(MalformedInputError):
    """A detector reference file is missing, corrupt, or does not match the model it serves."""

    code = "E160"


class ReferenceFitError(InputError):
    """Reference data given to fit the detectors cannot be used (shape, values, too few rows)."""

    code = "E161"


class DetectorInputError(InputError):
    """A request's inputs or outputs do not match the detector reference (shape, non-finite)."""

    code = "E162"


class StreamStateError(MalformedInputError):
    """A stored detector stream state is corrupt or belongs to another reference."""

    code = "E163"
    http_status = 500


# --- E170-E179: assessment (attacks E170-E174; targets, reports, thresholds E175-E179) --
class AssessDataError(InputError):
    """The assessment data file (.npz) lacks an array or holds arrays that do not fit together."""

    code = "E175"


class EndpointError(InputError):
    """The URL and model name do not lead to an Open Inference Protocol model that answers."""

    code = "E176"


class EndpointCredentialsError(IdentityError):
    """The endpoint refused the assessment's credentials (HTTP 401 or 403)."""

    code = "E177"
    # The assessment could not run: "could not decide", not a finding.
    exit_status = 2


class EndpointRefusedError(BudgetError):
    """The endpoint kept refusing queries (HTTP 429: its rate limit or quota) after retries."""

    code = "E178"
    exit_status = 2


class TargetMismatchError(InputError):
    """The two targets of a comparison differ in input shape or number of classes."""

    code = "E179"


class AttackInputError(InputError):
    """The data or settings given to an attack do not fit the target."""

    code = "E170"
    http_status = 400


class QueryBudgetExhaustedError(BudgetError):
    """The assessment spent the query budget it was given for the target."""

    code = "E171"
    # The assessment could not finish: that is "could not decide", not a finding.
    exit_status = 2


class AttackNotApplicableError(InputError):
    """The attack needs what the target does not offer (gradients, scores, images)."""

    code = "E172"
    http_status = 400


class UnsupportedTargetError(InputError):
    """The model cannot be wrapped as an assessment target."""

    code = "E173"
    http_status = 400


class TargetOutputError(InputError):
    """The target answered with something that is not a valid prediction."""

    code = "E174"
    http_status = 502


# --- E180-E189: update gate -----------------------------------------------------


class UpdateMismatchError(InputError):
    """The two versions cannot be compared (different kinds, classes or input widths)."""

    code = "E180"


class CanaryLabelsError(InputError):
    """The canary set has no labels, so behaviour on it cannot be judged."""

    code = "E181"


class TensorShapeError(InputError):
    """Tensors of different shapes where the comparison needs the same shape."""

    code = "E182"


class UnsupportedUpdateModelError(InputError):
    """A model kind the update gate cannot run or compare (it is refused, not passed)."""

    code = "E183"


class CanaryShapeError(InputError):
    """The canary features do not fit the model's input width."""

    code = "E184"


class CanaryTooSmallError(InputError):
    """Too few canary rows to judge an update: refused rather than passed."""

    code = "E185"


# --- E190-E199: federated aggregation -------------------------------------------


class ClientUpdateMismatchError(InputError):
    """Client updates whose tensor names, shapes or dtypes differ from each other."""

    code = "E190"


class NonFiniteUpdateError(InputError):
    """A client update holding NaN or infinity: refused, never averaged in."""

    code = "E191"


class EmptyCohortError(InputError):
    """No client updates to aggregate or screen, or an update with no tensors."""

    code = "E192"


class AggregationParameterError(InputError):
    """An aggregation or screening parameter that does not fit the cohort (rule, f, trim)."""

    code = "E193"


class UnsupportedUpdateError(InputError):
    """A client update that is not a mapping of names to numeric NumPy arrays or torch tensors."""

    code = "E194"


# --- E320-E329: runtime responses (quarantine, admin release) -------------------
class IdentityQuarantinedError(MlwardenError):
    """The identity is quarantined for this model by a runtime detector until released."""

    code = "E320"
    exit_status = 1
    http_status = 403


class IdentityThrottledError(BudgetError):
    """A runtime detector put the identity on a stricter rate for this model, and it is spent."""

    code = "E321"


class DetectorConfigError(PolicyFileError):
    """The `detectors:` section names a model, signal or response that cannot be used."""

    code = "E322"


class ReferenceNotTrustedError(IntegrityError):
    """A detector reference that is unsigned or does not verify against the trust policy."""

    code = "E323"


class DetectorStoreError(MlwardenError):
    """The detector state and quarantine store cannot be read or written."""

    code = "E324"
    http_status = 503


class ReferenceMismatchError(InputError):
    """A detector reference that does not fit the model it is declared for."""

    code = "E325"


# --- E9xx: internal -----------------------------------------------------------


class InternalError(MlwardenError):
    """A bug in mlwarden: please report it with the input that caused it."""

    code = "E901"


def all_error_classes() -> tuple[type[MlwardenError], ...]:
    """Every error class, for the README table and the uniqueness test."""
    seen: list[type[MlwardenError]] = []
    stack: list[type[MlwardenError]] = [MlwardenError]
    while stack:
        cls = stack.pop()
        if cls not in seen:
            seen.append(cls)
            stack.extend(cls.__subclasses__())
    return tuple(sorted(seen, key=lambda c: c.code))
