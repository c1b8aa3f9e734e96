"""Workloads of the sim's zoo (``sim/zoo.py``): small Faust-style apps with exact checks.

Each module is a detstream project of its own (``detstream sim sim/workloads/<file>.py``)
with a ``sim_scenario``; its docstring says what engine path it reaches and what
its checks prove. Nothing here is imported by the simulator itself.
"""
