"""A read model of version 3's wallets: what a projection worker of the new code runs."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from facta import Event, EventEnvelope
from facta.projections import Projection, Session
from tests.evolution import wallet_v3 as v3


class Balance(msgspec.Struct, frozen=True):
    owner: str
    tier: str
    balance: Decimal


class WalletBalances(Projection[Balance]):
    name = "wallet_balances"
    event_types = (v3.WalletOpened, v3.MoneyDeposited)
    document = Balance

    async def handle(self, envelope: EventEnvelope[Event], session: Session[Balance]) -> None:
        key = envelope.recorded.stream_id
        match envelope.event:
            case v3.WalletOpened(owner=owner, tier=tier):
                session.put(key, Balance(owner, tier, Decimal(0)))
            case v3.MoneyDeposited(amount=amount):
                current = await session.get(key)
                assert current is not None
                session.put(key, msgspec.structs.replace(current, balance=current.balance + amount))
