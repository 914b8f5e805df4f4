"""Workflows: train, evaluate, calibrate, export, slides, cohorts, Ray. Imports: inference and below, never cli."""
