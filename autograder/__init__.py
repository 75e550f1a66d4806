"""Instructor autograder for the course exercises: sandboxed kernels, trusted scoring (see DESIGN.md)."""
