"""The sender's blinded values, one X25519 multiplication each.

Hop i of a path sees α_i, the sender's ephemeral key x blinded by the factors b_0 … b_{i-1}
of the hops before it, and shares with the sender s_i, its public key Y_i multiplied by the
same scalars:

    α_i = X25519(b_{i-1}, … X25519(b_0, X25519(x, G)))
    s_i = X25519(b_{i-1}, … X25519(b_0, X25519(x, Y_i)))

Done one multiplication at a time, as the hops do it, five hops cost the sender 19
variable-base multiplications. X25519 clamps each scalar k to c(k), a multiple of 8, and on
a point of the curve a multiple of 8 acts only through its value modulo the prime order ℓ
(it annihilates the 8-torsion). So with C = c(x) · c(b_0) ⋯ c(b_{i-1}) mod ℓ, kept by
libsodium's constant-time scalar arithmetic, α_i = C·G and s_i = C·Y_i take one
multiplication each (fixed-base for α_i), provided C is handed to X25519 as a scalar that
clamping leaves as it is: s = 8t with 2^251 ≤ t < 2^252 and 8t ≡ ±C (mod ℓ) (a Montgomery
u-coordinate is the same for P and −P). One of t ≡ C/8 and ℓ − t lies in that range unless t
is within 2^125 of 0 or of ℓ (a chance of about 2^-125); the chain then multiplies one step
at a time instead.

The values are the step-by-step ones for every public key on the curve, which is every key a
private key can have. For a point of the curve's twist they differ, and do not matter: no
private key matches such a public key, so the hop cannot open the packet either way.
"""

from __future__ import annotations

from nacl.bindings import (
    crypto_core_ed25519_scalar_mul,
    crypto_core_ed25519_scalar_negate,
    crypto_core_ed25519_scalar_reduce,
)

from sphinx_packets.geometry import GROUP_ELEMENT_SIZE
from sphinx_packets.primitives import x25519, x25519_public

ORDER = 2**252 + 27742317777372353535851937790883648493
"""ℓ, the prime order of the curve's main subgroup (and of Ed25519's base point)."""
_INVERSE_OF_8 = ((3 * ORDER + 1) // 8).to_bytes(GROUP_ELEMENT_SIZE, "little")  # ℓ ≡ 5 mod 8
_PAD = bytes(GROUP_ELEMENT_SIZE)


def clamp(scalar: bytes) -> bytes:
    """The scalar X25519 multiplies by: bits 0-2 and 255 cleared, bit 254 set (RFC 7748)."""
    clamped = bytearray(scalar)
    clamped[0] &= 248
    clamped[31] = (clamped[31] & 127) | 64
    return bytes(clamped)


def reduce_scalar(scalar: bytes) -> bytes:
    """A 32-byte little-endian integer modulo ℓ (libsodium)."""
    return crypto_core_ed25519_scalar_reduce(scalar + _PAD)


def clamped_representative(scalar: bytes) -> bytes | None:
    """A scalar s that clamping leaves unchanged and with s ≡ ±`scalar` (mod ℓ) and 8 | s,
    so that X25519(s, P) = `scalar`·P for every point P of the curve; None in the rare case
    (about 2^-125) that no such s exists below 2^255. `scalar` is 32 bytes little-endian,
    reduced modulo ℓ."""
    eighth = crypto_core_ed25519_scalar_mul(scalar, _INVERSE_OF_8)
    if not 8 <= eighth[31] < 16:  # 2^251 ≤ t < 2^252
        eighth = crypto_core_ed25519_scalar_negate(eighth)
        if not 8 <= eighth[31] < 16:
            return None
    return (int.from_bytes(eighth, "little") << 3).to_bytes(GROUP_ELEMENT_SIZE, "little")


class BlindingChain:
    """The sender's ephemeral secret blinded by each hop's factor in turn: `alpha` and
    `shared_secret` give the values of the hop the chain has reached, and `blind` moves it
    to the next hop. Holds secrets; its repr shows none."""

    __slots__ = ("_alpha", "_factors", "_multiplier", "_scalar", "_secret_key")

    def __init__(self, secret_key: bytes, alpha: bytes) -> None:
        """`secret_key` is the ephemeral x and `alpha` its public key X25519(x, G)."""
        self._secret_key = secret_key
        self._alpha = alpha
        self._factors: list[bytes] = []
        self._scalar = reduce_scalar(clamp(secret_key))
        self._multiplier: bytes | None = None  # clamped_representative(_scalar), once blinded

    def __repr__(self) -> str:
        return f"BlindingChain(factors={len(self._factors)})"

    def blind(self, factor: bytes) -> None:
        """Move to the next hop, whose α is this one's blinded by `factor`."""
        self._factors.append(factor)
        self._scalar = crypto_core_ed25519_scalar_mul(self._scalar, reduce_scalar(clamp(factor)))
        self._multiplier = clamped_representative(self._scalar)

    def alpha(self) -> bytes:
        """α of the hop the chain has reached."""
        if not self._factors:
            return self._alpha
        if self._multiplier is not None:
            return x25519_public(self._multiplier)
        return self._step_by_step(self._alpha)

    def shared_secret(self, public_key: bytes) -> bytes:
        """The secret that the hop with `public_key` will share; `InvalidKeyError` for a
        low-order key."""
        if self._factors and self._multiplier is not None:
            return x25519(self._multiplier, public_key)
        return self._step_by_step(x25519(self._secret_key, public_key))

    def _step_by_step(self, element: bytes) -> bytes:
        for factor in self._factors:
            element = x25519(factor, element)
        return element
