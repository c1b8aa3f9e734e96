"""Web views of users (served by ``detstream worker``; ``app.web.client()`` in tests)."""

from proj.app import app

from .agents import spent, user_names


@app.page("/users/{user_id}/")
async def user_detail(web, request, user_id):
    """A user's name and what they spent, if this worker holds the user's partition."""
    if user_id not in user_names:
        return web.notfound(f"no user {user_id!r} on this worker")
    return web.json({"id": user_id, "name": user_names[user_id], "spent": spent[user_id]})
