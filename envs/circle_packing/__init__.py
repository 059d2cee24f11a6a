"""Circle packing in the unit square: 26 or 32 circles, maximal sum of radii."""
