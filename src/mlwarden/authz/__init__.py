"""Authorization: which principal may do which action on which model (Cedar, via cedarpy).

```python
authorizer = Authorizer(AuthorizationConfig.model_validate(section), base_dir=config_dir)
decision = authorizer.is_authorized(principal, Action.INFER, ModelResource(name="churn"))
```

Entities: principal `Mlwarden::User` (roles: Set<String>, tenant: String, clearance: Long,
auth_method: String), action `Mlwarden::Action::"infer" | "read_metadata" | "admin"`,
resource `Mlwarden::Model` (sensitivity, owner, tenant: String). No policy means deny.
"""

from mlwarden.authz._authorizer import ACTION_TYPE, PRINCIPAL_TYPE, RESOURCE_TYPE, Authorizer
from mlwarden.authz._config import AuthorizationConfig
from mlwarden.authz._model import Action, Decision, ModelResource

__all__ = [
    "ACTION_TYPE",
    "PRINCIPAL_TYPE",
    "RESOURCE_TYPE",
    "Action",
    "AuthorizationConfig",
    "Authorizer",
    "Decision",
    "ModelResource",
]
