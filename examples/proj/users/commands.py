"""Command-line commands of users: ``python -m proj add-user ID NAME``."""

from detstream.cli.main import argument, option
from proj.app import app

from .agents import users_topic
from .models import User


@app.command(argument("user_id"), argument("name"),
             option("--quiet", is_flag=True, help="Print nothing."))
async def add_user(self, user_id, name, quiet):
    """Register user USER_ID called NAME: send it to the users topic."""
    await app.start_client()
    sent = await users_topic.send(key=user_id, value=User(id=user_id, name=name))
    metadata = await sent
    if not quiet:
        self.say(f"user {user_id} sent to {metadata.topic}[{metadata.partition}]")
