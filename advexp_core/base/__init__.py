"""What every part may use and which uses no other part: threads and devices, locks, process groups, JSON numbers, statistics."""
