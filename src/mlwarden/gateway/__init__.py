"""The zero-trust inference gateway: `mlwarden serve`.

```python
from mlwarden.gateway import Gateway, make_server
from mlwarden.policy import load_policy

gateway = Gateway.from_policy(load_policy(Path("mlwarden.yaml")))   # an ASGI app
make_server(gateway, host="127.0.0.1", port=8080).run()
```

Open Inference Protocol v2 endpoints in front of local models (loaded only through
`mlwarden.load`) or an upstream OIP server; every call is authenticated
(`mlwarden.identity`), authorized (`mlwarden.authz`, Cedar), budgeted
(`mlwarden.budgets`), validated (`_guard`), minimized (`_minimize`) and audited
(`mlwarden.audit`).
"""

from mlwarden.gateway._minimize import OutputPolicy
from mlwarden.gateway._models import ModelOutput, ServedModel, load_model
from mlwarden.gateway._server import make_server
from mlwarden.gateway.app import GATEWAY_RESOURCE, Gateway

__all__ = [
    "GATEWAY_RESOURCE",
    "Gateway",
    "ModelOutput",
    "OutputPolicy",
    "ServedModel",
    "load_model",
    "make_server",
]
