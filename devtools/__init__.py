"""Developer tools: the demo, the headless end-to-end driver, synthetic data, benchmarks and the bank
simulator. None of it is part of the service.

| module | what it is |
|---|---|
| `demo.py` | `kyufu demo seed` and `kyufu run`'s seed step: the demo municipality, logins, registry, bank |
| `demo_staff.py` | the demo logins, and `provision`: ready accounts made through the real enrolment path |
| `demo_registry.py` | the demo registry and one program of each payment mode |
| `demo_bank.py` | the demo bank contract and the bank's age identity on disk |
| `e2e.py` | `kyufu demo e2e`: the whole chain, headless |
| `synthetic.py` | synthetic 住民基本台帳 / 課税 / 口座 extracts (`kyufu demo registry`; needs faker) |
| `banksim.py` | `kyufu bank simulate`: "executes" a Zengin file and writes a returns CSV (payouts/returns_csv.py) |
| `registry_bench.py` | `kyufu registry bench` |
| `payouts_bench.py` | `kyufu payouts bench` |
| `zengin_bench.py`, `seal_bench.py` | micro-benchmarks: Zengin record formatting, sealing's peak memory |

The service packages (`app/`, `payouts/`, `workers/`) never import this package. The `kyufu` command is the
one exception, and only lazily, inside the developer commands (app/cli.py, app/registry/cli.py,
payouts/cli.py). The third-party packages only these tools need (faker, embedded PostgreSQL and Valkey) are
in pyproject's `dev` extra, not in the production dependencies; the production image has no `devtools/`.
"""
