"""A user created just in time by federation emits ``user.created`` (via federation)."""

from __future__ import annotations

from collections.abc import Callable

from federation._core import begin, callback, first_party_client, query
from federation.conftest import upstream_op  # noqa: F401 - the session fixture
from federation.rig.node_op import Account, UpstreamOP
from federation.test_core_oidc import at_upstream, provider_at
from oneauth.apps.models import AppRecord
from oneauth.services import Services
from oneauth.settings import Settings
from oneauth.strategies import upstream as strategy

from ._receiver import Receiver
from .conftest import add_endpoint, deliveries


async def test_jit_federation_emits_user_created(
    upstream_op: UpstreamOP,  # noqa: F811
    provision: Callable[..., AppRecord],
    settings: Settings,
    services: Services,
    receiver: Receiver,
) -> None:
    app = provision(name="Federated Hooks")
    first_party_client(settings, app)
    await add_endpoint(services, receiver, app, f"fed-{app.app_id}")
    provider = provider_at(settings, app, upstream_op)
    account = Account.new("hook@upstream.example", name="Hook")
    started, browser = await begin(services, app, provider.id)
    assert query(started.authorize_url)["state"]
    params = await at_upstream(upstream_op, started.authorize_url, account)
    outcome = await callback(services, app, provider.id, params, browser)
    assert isinstance(outcome, strategy.SignedIn), outcome
    [row] = await deliveries(services, app)
    assert row.event_type == "user.created"
    assert row.payload["data"] == {
        "user_id": str(outcome.user.id),
        "email": "hook@upstream.example",
        "via": f"federation:{provider.id}",
    }
    # The second sign-in of the same upstream account creates no one.
    started, browser = await begin(services, app, provider.id)
    params = await at_upstream(upstream_op, started.authorize_url, account)
    assert isinstance(
        await callback(services, app, provider.id, params, browser), strategy.SignedIn
    )
    assert len(await deliveries(services, app)) == 1
