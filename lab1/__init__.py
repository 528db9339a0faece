"""Lab 1: the five-stage pipeline (stage scripts) and the small library they share (lab1.core)."""
