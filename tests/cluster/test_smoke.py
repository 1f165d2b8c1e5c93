"""The HA cluster's smoke test, the one part of tests/cluster that `make test` runs (the fault scenarios are
`make cluster-chaos`): `up` gives a Patroni leader with a synchronous standby, a Valkey primary that
Sentinel knows with an in-sync replica, and a resident's application through HAProxy that a worker node
verifies."""

from __future__ import annotations

import pytest

from tests.chaos import invariants
from tests.cluster.conftest import CODE
from tests.cluster.residents import Log, apply_all
from tests.intake.helpers import make_letters

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


async def test_cluster_up_serves_and_verifies_through_haproxy_and_sentinel(ha):
    leader, standby = ha.leader(), ha.sync_standby()
    assert leader and standby and leader != standby
    assert ha.patroni_role(standby) == "replica"
    assert ha.valkey_primary() is not None
    assert "down" not in ha.status().values(), ha.status()
    letters = await make_letters(ha.pool, ha.settings.master_key_bytes, CODE, 4)
    log = Log()
    receipts = await apply_all(ha.http_url, letters, log, concurrency=4)
    assert log.statuses() == {201: 4}
    await invariants.check(ha.pool, CODE, receipts, 4, timeout=60)
