"""The book's helpers, apart from the library proper: figures and learning-curve plots, the live
widgets and the kernel-free static sweep, the parameter-sharing experiments of chapter 06, and the
budgets that shrink a notebook for the test suite."""
