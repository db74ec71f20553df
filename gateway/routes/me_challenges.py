"""Shopper routes: my challenges, badges and the opt-in leaderboards (shopper Bearer token)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Router, get, put
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody

from contracts.challenges import Leaderboard, LeaderboardOptIn, MyChallenges
from gateway.auth.shopper import provide_shopper, shopper_bearer
from gateway.routes._common import PathId, in_transaction
from gateway.tokens import ShopperClaims
from shoppers.challenges import view

Shopper = NamedDependency[ShopperClaims]


@get("/me/challenges")
async def my_challenges(request: Request[Any, Any, Any], shopper: Shopper) -> MyChallenges:
    return await in_transaction(request, lambda conn: view.mine(conn, shopper.shopper_id))


@get("/me/challenges/{challenge_id:int}/leaderboard")
async def get_leaderboard(
    request: Request[Any, Any, Any], challenge_id: PathId, shopper: Shopper
) -> Leaderboard:
    return await in_transaction(
        request, lambda conn: view.leaderboard(conn, shopper.shopper_id, challenge_id)
    )


@put("/me/challenges/{challenge_id:int}/leaderboard")
async def set_leaderboard(
    request: Request[Any, Any, Any],
    challenge_id: PathId,
    data: JSONBody[LeaderboardOptIn],
    shopper: Shopper,
) -> Leaderboard:
    return await in_transaction(
        request,
        lambda conn: view.opt_in(conn, shopper.shopper_id, challenge_id, on=data.opt_in),
    )


ME_CHALLENGES = Router(
    path="/v1",
    route_handlers=[my_challenges, get_leaderboard, set_leaderboard],
    guards=[shopper_bearer],
    dependencies={"shopper": Provide(provide_shopper)},
    tags=["shopper"],
)

ROUTES = [ME_CHALLENGES]
