"""Periodic work of attribution: none. Credits become final by the lock period, which is
measured at the time of each triggering change, so nothing has to run on a clock."""
