"""The users agents and tables.

Every topic the tables are written from is keyed by user id and has the
app's four partitions, so partition ``i`` of ``users``, of the
``record_spending`` topic and of both changelogs lands on one worker: the
tables of a user live where that user's events are processed.
"""

from proj.app import app

from .models import Spend, User

users_topic = app.topic("users", key_type=str, value_type=User)

user_names = app.Table("user-names", key_type=str, value_type=str, help="Name by user id.")
spent = app.Table("spent", default=int, key_type=str, value_type=int,
                  help="Total amount spent by user id.")


@app.agent(users_topic)
async def register(users):
    """Register users: their names, by user id."""
    async for user in users:
        user_names[user.id] = user.name


@app.agent(value_type=Spend)
async def record_spending(spends):
    """Add up what each user spent (``proj.orders`` sends here, keyed by user id)."""
    async for spend in spends:
        spent[spend.user_id] += spend.amount
