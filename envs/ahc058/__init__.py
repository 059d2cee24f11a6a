"""AtCoder Heuristic Contest 058: a production plan over a hierarchy of apple machines."""
