"""The orchestrator's secure mode on loopback: mTLS with a CA the test makes (SECURE_CERT_DIR's
`ca.crt`, `tls.crt`, `tls.key`) and the model node's wallet delegation checked against the
wallet the orchestrator announced."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from coordinator_dagster.domain_types import InferenceOutput
from coordinator_dagster.models.orchestrator.channel import MESSAGE_HEADER, SIGNATURE_HEADER, WALLET_HEADER, server_name
from coordinator_dagster.models.orchestrator.config import OrchestratorConfig
from coordinator_dagster.models.orchestrator.runner import OrchestratorRunner
from coordinator_dagster.models.examples import MomentumTracker
from coordinator_dagster.statuses import PredictionStatus
from tests.orchestrator_standin import ModelNode, StandInOrchestrator, entry
from tests.test_orchestrator_runner import TRACKER_BASE, payloads

pytestmark = pytest.mark.process

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58encode(raw: bytes) -> str:
    number, out = int.from_bytes(raw, "big"), ""
    while number:
        number, digit = divmod(number, 58)
        out = _B58[digit] + out
    return "1" * (len(raw) - len(raw.lstrip(b"\0"))) + out


def _pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _certificate(subject: str, key, issuer_key, issuer_name: x509.Name | None, *, ca: bool = False, dns: str | None = None) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name or name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


class Authority:
    def __init__(self, name: str = "crunch-ca"):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = _certificate(name, self.key, self.key, None, ca=True)

    def issue(self, subject: str, dns: str | None = None) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(subject, key, self.key, self.cert.subject, dns=dns)
        return _pem(key), cert.public_bytes(serialization.Encoding.PEM)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def cert_dir(folder: Path, ca: Authority, issuer: Authority | None = None) -> str:
    folder.mkdir()
    key, cert = (issuer or ca).issue("coordinator")
    (folder / "ca.crt").write_bytes(ca.pem)
    (folder / "tls.crt").write_bytes(cert)
    (folder / "tls.key").write_bytes(key)
    return str(folder)


def delegation(wallet: Ed25519PrivateKey, model_id: str, expires_in: float = 3600) -> list[tuple[str, str]]:
    message = json.dumps({"model_id": model_id, "cert_pub": "", "expires_at": int(time.time() + expires_in)}).encode()
    public = wallet.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return [(WALLET_HEADER, b58encode(public)), (MESSAGE_HEADER, base64.b64encode(message).decode()),
            (SIGNATURE_HEADER, base64.b64encode(wallet.sign(message)).decode())]


@pytest.fixture
def secure(tmp_path):
    ca = Authority()
    made: list = []

    def node(model_id: str, wallet: Ed25519PrivateKey, *, expires_in: float = 3600) -> ModelNode:
        key, cert = ca.issue("model node", dns=server_name(model_id))
        credentials = grpc.ssl_server_credentials([(key, cert)], root_certificates=ca.pem, require_client_auth=True)
        made.append(ModelNode(MomentumTracker, class_name=TRACKER_BASE, server_credentials=credentials, initial_metadata=delegation(wallet, model_id, expires_in)))
        return made[-1]

    def runner(orchestrator: StandInOrchestrator, certs: str) -> OrchestratorRunner:
        config = OrchestratorConfig("127.0.0.1", orchestrator.port, "secure", TRACKER_BASE, 3.0, cert_dir=certs, connect_timeout=3.0, setup_timeout=2.0)
        made.append(OrchestratorRunner(config, InferenceOutput))
        return made[-1]

    yield ca, node, runner
    for thing in reversed(made):
        (thing.close if isinstance(thing, OrchestratorRunner) else thing.stop)()


def _wallet_b58(wallet: Ed25519PrivateKey) -> str:
    return b58encode(wallet.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def test_secure_mode_calls_a_node_that_proves_the_announced_wallet(tmp_path, secure):
    ca, node, runner = secure
    alice, mallory = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    good = node("good", alice)
    impostor = node("impostor", mallory)  # signed by a wallet the orchestrator did not announce
    expired = node("expired", alice, expires_in=-60)
    orchestrator = StandInOrchestrator("secure", [
        entry("good", good, wallet=_wallet_b58(alice)), entry("impostor", impostor, wallet=_wallet_b58(alice)),
        entry("expired", expired, wallet=_wallet_b58(alice)),
    ])
    try:
        outcomes = {o.model_id: o for o in runner(orchestrator, cert_dir(tmp_path / "certs", ca)).predict_round(payloads(1)[0], 60, 60)}
    finally:
        orchestrator.close()
    assert outcomes["good"].status == PredictionStatus.PENDING
    assert outcomes["impostor"].status == PredictionStatus.ABSENT and "signed by wallet" in outcomes["impostor"].failed_reason
    assert outcomes["expired"].status == PredictionStatus.ABSENT and "expired" in outcomes["expired"].failed_reason
    assert good.setups == 1


def test_secure_mode_refuses_a_node_the_ca_did_not_sign_and_is_refused_without_our_certificate(tmp_path, secure):
    ca, node, runner = secure
    alice = Ed25519PrivateKey.generate()
    good = node("good", alice)
    orchestrator = StandInOrchestrator("secure", [entry("good", good, wallet=_wallet_b58(alice))])
    try:
        # Our client certificate from another CA: the model node refuses the handshake.
        stranger = runner(orchestrator, cert_dir(tmp_path / "stranger", ca, issuer=Authority("other-ca")))
        [outcome] = stranger.predict_round(payloads(1)[0], 60, 60)
        assert outcome.status == PredictionStatus.ABSENT and "not connected" in outcome.failed_reason
        # A CA that did not sign the node's certificate: we refuse the node.
        wrong_ca = runner(orchestrator, cert_dir(tmp_path / "wrong-ca", Authority("other-ca")))
        [outcome] = wrong_ca.predict_round(payloads(1)[0], 60, 60)
        assert outcome.status == PredictionStatus.ABSENT and "not connected" in outcome.failed_reason
    finally:
        orchestrator.close()
    assert good.setups == 0
