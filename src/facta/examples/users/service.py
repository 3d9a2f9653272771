"""The user directory: commands through the Application, queries on the read model only."""

from __future__ import annotations

from facta import Application, Codec, Engine
from facta.examples.users.domain import (
    CreateUser,
    DeactivateUser,
    ReactivateUser,
    UpdateUserProfile,
    User,
    UserError,
    UserState,
)
from facta.examples.users.emails import (
    EmailReservation,
    ReleaseEmail,
    ReserveEmail,
    normalise_email,
    reservation_id,
)
from facta.examples.users.read_model import UsersProjection, UserView
from facta.projections import InlineProjections, Page, ReadStore

user = User()
reservations = EmailReservation()


class UserDirectory:
    """Create and change users; find them by id, by email, or list the active ones."""

    def __init__(
        self, app: Application, read_store: ReadStore, inline: InlineProjections | None = None
    ) -> None:
        self.app = app
        self.read_store = read_store
        self.views = read_store.documents(UsersProjection)
        self._inline = inline

    @classmethod
    async def open(cls, store: Engine) -> UserDirectory:
        """Wire the directory on ``store``: the users read model kept inline."""
        codec = Codec()
        inline = InlineProjections(store, [UsersProjection()], codec=codec)
        await inline.setup()
        app = Application(store, codec=codec, transaction_hook=inline)
        return cls(app, ReadStore(store), inline)

    async def close(self) -> None:
        await self.read_store.close()
        if self._inline is not None:
            await self._inline.close()

    # -- commands --------------------------------------------------------------------------

    async def create_user(self, user_id: str, email: str, name: str) -> UserState:
        """Create a user whose email no other user has.

        Raises EmailTaken when another user holds the email (also under concurrency: see
        ``facta.examples.users.emails``), UserError when the user exists, ValueError for bad
        input. If the process dies between the reservation and the user, the email stays
        reserved for ``user_id``: repeating the call with the same id finishes the job.
        """
        command = CreateUser(email, name)  # checks the shape before anything is written
        reservation = reservation_id(email)
        await self.app.execute(reservations, reservation, ReserveEmail(user_id))
        try:
            result = await self.app.execute(user, user_id, command)
        except (UserError, ValueError):
            # This user cannot be created: give the email back (unless it is theirs already).
            existing = await self.app.load(user, user_id)
            if normalise_email(existing.state.email) != normalise_email(email):
                await self.app.execute(reservations, reservation, ReleaseEmail(user_id))
            raise
        return result.state

    async def update_profile(
        self, user_id: str, *, name: str | None = None, bio: str | None = None
    ) -> UserState:
        return (await self.app.execute(user, user_id, UpdateUserProfile(name, bio))).state

    async def deactivate(self, user_id: str, reason: str) -> UserState:
        return (await self.app.execute(user, user_id, DeactivateUser(reason))).state

    async def reactivate(self, user_id: str) -> UserState:
        return (await self.app.execute(user, user_id, ReactivateUser())).state

    # -- queries ---------------------------------------------------------------------------

    async def get(self, user_id: str) -> UserView | None:
        return await self.views.get(user_id)

    async def get_by_email(self, email: str) -> UserView | None:
        page = await self.views.query({"email_normalised": normalise_email(email)}, limit=1)
        return page.items[0] if page.items else None

    async def list_active(self, *, after: str | None = None, limit: int = 20) -> Page[UserView]:
        """Active users, oldest first, one page at a time (pass ``Page.next`` as ``after``)."""
        return await self.views.query(
            {"is_active": True}, order_by="created_at", after=after, limit=limit
        )
