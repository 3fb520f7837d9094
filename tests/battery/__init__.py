"""The bad-input battery: table-driven cases over every public entry point
(see ``tests/test_bad_input_battery.py``)."""
