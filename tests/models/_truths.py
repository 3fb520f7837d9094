"""Finite-difference truths shared by the model tests (not a test module)."""
import autograd
import numpy as onp


def fd_hessian(fun, x, step=1e-3):
    """Hessian by a 4-point central difference of the gradient, O(step^4)."""
    grad = autograd.grad(fun)
    cols = [(-grad(x + 2 * e) + 8 * grad(x + e) - 8 * grad(x - e)
             + grad(x - 2 * e)) / (12 * step)
            for e in onp.eye(x.size) * step]
    hess = onp.array(cols)
    return 0.5 * (hess + hess.T)


def max_rel_diff(actual, desired):
    """Largest entrywise difference relative to sqrt(desired_ii desired_jj)."""
    scale = onp.sqrt(onp.outer(onp.diag(desired), onp.diag(desired)))
    return onp.max(onp.abs(actual - desired) / scale)
