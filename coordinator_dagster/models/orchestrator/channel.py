"""One orchestrator-hosted model's gRPC connection: open it (plain, or mTLS in secure mode),
instantiate the participant's class (`Setup`), call its methods (`Call`).

Secure mode (SECURE_CERT_DIR, the orchestrator's layout: `ca.crt`, `tls.crt`, `tls.key`): the
node presents its client certificate and accepts only a model node whose certificate the CA
signed for `model-node-<model_id>.crunchdao.internal` (the name the orchestrator's model nodes
are issued). The model node also proves, in the response headers of `Setup`, that it acts for
the cruncher the orchestrator announced: a message signed with the cruncher's wallet key
(Ed25519, base58 public key), naming the model; `check_delegation` refuses any other wallet, a
bad signature, another model or an expired message.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf.empty_pb2 import Empty

from coordinator_dagster.models.orchestrator.events import ModelInfo
from coordinator_dagster.models.orchestrator.protocol import SERVICE
from coordinator_dagster.models.orchestrator.protocol.commons_pb2 import Argument
from coordinator_dagster.models.orchestrator.protocol.dynamic_subclass_pb2 import CallRequest, CallResponse, RestResponse, SetupRequest, SetupResponse

# Fast reconnects: a model node that restarts is back within the next round.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
# A model node answers in one of two ways: a `status` in the message (code SUCCESS, ...), or, as
# CrunchDAO's model-runner server does, an empty status on success and a gRPC error otherwise
# (INTERNAL: the model raised; FAILED_PRECONDITION: no instance, or no class to instantiate).
OK_CODES = ("", "SUCCESS")
WALLET_HEADER = "x-server-wallet-pubkey"
MESSAGE_HEADER = "x-server-auth-message"
SIGNATURE_HEADER = "x-server-auth-signature"


class DelegationError(RuntimeError):
    """The model node did not prove it acts for the announced cruncher."""


@dataclass(frozen=True)
class SecureCredentials:
    ca: bytes
    certificate: bytes
    key: bytes

    @classmethod
    def from_directory(cls, folder: str | Path) -> SecureCredentials:
        folder = Path(folder)
        missing = [name for name in ("ca.crt", "tls.crt", "tls.key") if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(f"secure mode: {folder} lacks {', '.join(missing)}")
        return cls((folder / "ca.crt").read_bytes(), (folder / "tls.crt").read_bytes(), (folder / "tls.key").read_bytes())


def server_name(model_id: str) -> str:
    return f"model-node-{model_id}.crunchdao.internal"


_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        digit = _B58.find(char)
        if digit < 0:
            raise ValueError(f"not base58: {char!r}")
        number = number * 58 + digit
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def check_delegation(headers: dict[str, str], info: ModelInfo, now: float | None = None) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    wallet, message, signature = (headers.get(h) for h in (WALLET_HEADER, MESSAGE_HEADER, SIGNATURE_HEADER))
    if not (wallet and message and signature):
        raise DelegationError(f"model {info.model_id}: no wallet delegation in the model node's headers")
    if wallet != info.wallet_pubkey:
        raise DelegationError(f"model {info.model_id}: signed by wallet {wallet}, the orchestrator announced {info.wallet_pubkey or 'none'}")
    try:
        raw_message = base64.b64decode(message)
        Ed25519PublicKey.from_public_bytes(b58decode(wallet)).verify(base64.b64decode(signature), raw_message)
        payload = json.loads(raw_message)
    except (InvalidSignature, ValueError) as exc:
        raise DelegationError(f"model {info.model_id}: wallet delegation does not verify ({exc!r})") from None
    if payload.get("model_id") not in (None, info.model_id):
        raise DelegationError(f"model {info.model_id}: delegation names model {payload.get('model_id')}")
    expires = payload.get("expires_at")
    if expires is not None and float(expires) < (time.time() if now is None else now):
        raise DelegationError(f"model {info.model_id}: wallet delegation expired")


class ModelChannel:
    def __init__(self, info: ModelInfo, credentials: SecureCredentials | None = None):
        self.info = info
        self.credentials = credentials
        self.ready = False
        if credentials is None:
            self.channel = grpc.aio.insecure_channel(info.address, options=CHANNEL_OPTIONS)
        else:
            creds = grpc.ssl_channel_credentials(credentials.ca, credentials.key, credentials.certificate)
            options = [*CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", server_name(info.model_id))]
            self.channel = grpc.aio.secure_channel(info.address, creds, options=options)
        self._setup = self.channel.unary_unary(f"/{SERVICE}/Setup", request_serializer=SetupRequest.SerializeToString, response_deserializer=SetupResponse.FromString)
        self._call = self.channel.unary_unary(f"/{SERVICE}/Call", request_serializer=CallRequest.SerializeToString, response_deserializer=CallResponse.FromString)
        self._rest = self.channel.unary_unary(f"/{SERVICE}/Rest", request_serializer=Empty.SerializeToString, response_deserializer=RestResponse.FromString)

    async def setup(self, class_name: str, timeout: float) -> tuple[str, str]:
        """(status code, message) of instantiating the participant's class; SUCCESS (or an empty
        status, as CrunchDAO's model-runner answers) makes the channel ready. A node that has an
        instance already keeps it (Setup is idempotent there), so a model's state outlives the
        run that set it up. Secure mode checks the wallet delegation first."""
        call = self._setup(SetupRequest(className=class_name), timeout=timeout, wait_for_ready=True)
        if self.credentials is not None:
            metadata = await call.initial_metadata()
            check_delegation({str(k).lower(): v for k, v in (metadata or ())}, self.info)
        response = await call
        self.ready = response.status.code in OK_CODES
        return response.status.code, response.status.message

    async def call(self, method: str, args: list[Argument], timeout: float) -> CallResponse:
        return await self._call(CallRequest(methodName=method, methodArguments=args), timeout=timeout)

    async def close(self) -> None:
        self.ready = False
        await self.channel.close(grace=None)
