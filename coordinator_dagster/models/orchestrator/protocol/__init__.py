"""The model runner protocol's messages: the `.proto` files (restated from CrunchDAO's public
model-runner-client 0.14.0, wire-identical) and the modules `grpc_tools.protoc` generates from
them (`*_pb2.py`, never edited by hand; tests/test_orchestrator_protocol.py regenerates and
compares). Regenerate after editing a `.proto`:

    .venv/bin/python -m grpc_tools.protoc -Icoordinator_dagster/models/orchestrator/protocol \\
        --python_out=coordinator_dagster/models/orchestrator/protocol \\
        coordinator_dagster/models/orchestrator/protocol/commons.proto \\
        coordinator_dagster/models/orchestrator/protocol/dynamic_subclass.proto

then make the import of `commons_pb2` in `dynamic_subclass_pb2.py` relative (`from . import`).

The service has no generated stub: `channel.py` (client) and the tests' stand-in model nodes
(server) bind its three methods by their full names, `SERVICE` below.
"""

SERVICE = "dynamic_subclass.DynamicSubclassService"
