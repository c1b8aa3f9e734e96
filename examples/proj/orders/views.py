"""Web views of orders."""

from proj.app import app

from .agents import order_counts


@app.page("/orders/counts/")
async def counts(web, request):
    """Orders per user, for the users whose partitions this worker holds."""
    return web.json(order_counts.as_dict())
