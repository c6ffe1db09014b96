"""The run's private PKI, made at run time with `cryptography` into the lab's folder.

Serial numbers are chosen (not random) so that a handshake's record says which certificate
was served: `serial(kind, k)` is unique per certificate of a run. trustme makes a CA and
leaves in one call, but picks its own serials and lifetimes, so the leaves are made here.
Keys are ECDSA P-256: a handshake costs the 2-core machine little, so the handshake rate is
the schedule's, not the CPU's.

HAProxy reads a certificate as one PEM file holding the chain and the key; its OCSP
response beside it as `<crt>.ocsp` (DER) and the issuer as `<crt>.issuer`.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

EPOCH = dt.datetime(1970, 1, 1)


def wall_of(when: dt.datetime) -> float:
    """A naive UTC datetime (as cryptography 38 returns) as a Unix time."""
    return (when - EPOCH).total_seconds()


def utc(wall: float) -> dt.datetime:
    """A Unix time as a naive UTC datetime, truncated to the second (X.509's resolution)."""
    return EPOCH + dt.timedelta(seconds=int(wall))


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass
class CA:
    name: str
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def make(cls, name: str, serial: int, now: float) -> CA:
        key = _key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(key.public_key()).serial_number(serial)
                .not_valid_before(utc(now - 3600)).not_valid_after(utc(now + 30 * 86400))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                             False, False), critical=True)
                .sign(key, hashes.SHA256()))
        return cls(name, key, cert)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Leaf:
    serial: int
    names: tuple[str, ...]
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    issuer: CA

    @property
    def not_after(self) -> float:
        return wall_of(self.cert.not_valid_after)

    def pem(self, key: ec.EllipticCurvePrivateKey | None = None) -> str:
        """What HAProxy loads: certificate, issuer, key (another key: a broken bundle)."""
        return (self.cert.public_bytes(serialization.Encoding.PEM) + self.issuer.pem
                + _pem_key(key or self.key)).decode()

    def write(self, path: Path) -> Path:
        path.write_text(self.pem())
        return path


def issue(ca: CA, serial: int, names: tuple[str, ...], not_before: float, not_after: float,
          *, must_staple: bool = False, client: bool = False) -> Leaf:
    """A leaf for `names` valid over [not_before, not_after] (Unix times, whole seconds)."""
    key = _key()
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
         .issuer_name(ca.cert.subject).public_key(key.public_key()).serial_number(serial)
         .not_valid_before(utc(not_before)).not_valid_after(utc(not_after))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
         .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                        critical=False))
    if must_staple:
        b = b.add_extension(x509.TLSFeature([x509.TLSFeatureType.status_request]),
                            critical=False)
    return Leaf(serial, names, b.sign(ca.key, hashes.SHA256()), key, ca)


def ocsp_response(leaf: Leaf, this_update: float, next_update: float) -> bytes:
    """A signed 'good' OCSP response for `leaf` (DER), by its CA, valid until next_update."""
    builder = (ocsp.OCSPResponseBuilder()
               .add_response(cert=leaf.cert, issuer=leaf.issuer.cert, algorithm=hashes.SHA1(),
                             cert_status=ocsp.OCSPCertStatus.GOOD,
                             this_update=utc(this_update), next_update=utc(next_update),
                             revocation_time=None, revocation_reason=None)
               .responder_id(ocsp.OCSPResponderEncoding.HASH, leaf.issuer.cert))
    return builder.sign(leaf.issuer.key, hashes.SHA256()).public_bytes(
        serialization.Encoding.DER)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
