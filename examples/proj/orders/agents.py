"""The orders agent: repartitions orders by user, counts them, and tells the users part.

Orders arrive keyed by order id; ``group_by(Order.user_id)`` moves each one
to the partition of its user, where ``order_counts`` is written and from
where the ``Spend`` goes to ``proj.users.agents.record_spending``.
"""

from proj.app import app
from proj.users.agents import record_spending
from proj.users.models import Spend

from .models import Order

orders_topic = app.topic("orders", value_type=Order)

order_counts = app.Table("order-counts", default=int, key_type=str, value_type=int,
                         help="Number of orders by user id.")


@app.agent(orders_topic)
async def place_order(orders):
    """Count each user's orders and send what they cost to the users part."""
    async for order in orders.group_by(Order.user_id):
        order_counts[order.user_id] += 1
        await record_spending.send(
            key=order.user_id,
            value=Spend(user_id=order.user_id, order_id=order.id, amount=order.amount),
        )
