"""Models hosted by CrunchDAO's model orchestrator (MODEL_RUNNER=orchestrator).

The orchestrator builds and runs each participant's model in its own container and announces
them over a WebSocket (`ws://host:port/<crunch_id>`); the node calls each model over gRPC
(`DynamicSubclassService`). Modules:

- `protocol/`: the gRPC messages (.proto files and their generated modules)
- `variants.py`: Python values to and from the protocol's typed variants
- `events.py`: the WebSocket events (`init`, `update`, `report_failure`) and model infos
- `registry.py`: which models exist, following the events (pure, no I/O)
- `config.py`: where the orchestrator is, the node's limits, the crunchers' on-chain indexes
- `streaks.py`: consecutive timeouts and failures per deployment, and when to report them
- `channel.py`: one model's gRPC connection (plain or mTLS), Setup and Call
- `runner.py`: the `RoundRunner` the predictions asset uses, and `report_failures`
- `rules.py`: operator rules that find weak models on the leaderboard (LOW_PERFORMANCE)

No Dagster here (the core's rule); `resources/models.py` wraps `runner.py`.
"""
