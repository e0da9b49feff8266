"""The fault-injection suite (marker `chaos`): the demo suite under random faults, by rounds."""
