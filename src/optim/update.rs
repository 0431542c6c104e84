//! The element-wise update kernels behind the optimizers, one [`Job`] each, so they run
//! on the active ISA. Formulas are the reference's; see each optimizer's docs.

use crate::error::Result;
use crate::float::Float;
use crate::simd::{Job, Vector, lanes, run};

/// `p -= lr*g`.
pub(crate) struct SgdStep<'a, T> {
    pub p: &'a mut [T],
    pub g: &'a [T],
    pub lr: T,
}

impl<T: Float> Job<T> for SgdStep<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run<V: Vector<E = T>>(self) {
        let lr = V::splat(self.lr);
        lanes::<V, 1, 1, 0>(
            [self.g],
            [self.p],
            [],
            #[inline(always)]
            |[g], [p]| ([p.sub(lr.mul(g))], []),
        );
    }
}

/// `h = rho*h + (1-rho)*g^2; p -= lr*g / sqrt(h + eps)`.
pub(crate) struct RmsPropStep<'a, T> {
    pub p: &'a mut [T],
    pub h: &'a mut [T],
    pub g: &'a [T],
    pub lr: T,
    pub rho: T,
    pub eps: T,
}

impl<T: Float> Job<T> for RmsPropStep<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run<V: Vector<E = T>>(self) {
        let (lr, rho, one_m, eps) = (
            V::splat(self.lr),
            V::splat(self.rho),
            V::splat(T::ONE - self.rho),
            V::splat(self.eps),
        );
        lanes::<V, 1, 2, 0>(
            [self.g],
            [self.p, self.h],
            [],
            #[inline(always)]
            |[g], [p, h]| {
                let h = rho.mul(h).add(one_m.mul(g).mul(g));
                let p = p.sub(lr.mul(g).div(h.add(eps).sqrt()));
                ([p, h], [])
            },
        );
    }
}

/// Adam: `m = rho1*m + (1-rho1)*g; v = rho2*v + (1-rho2)*g^2;
/// p -= lr*(m/c1) / (sqrt(v/c2) + eps)` with `c = 1 - rho^t`.
pub(crate) struct AdamStep<'a, T> {
    pub p: &'a mut [T],
    pub m: &'a mut [T],
    pub v: &'a mut [T],
    pub g: &'a [T],
    pub lr: T,
    pub rho1: T,
    pub rho2: T,
    pub c1: T,
    pub c2: T,
    pub eps: T,
}

impl<T: Float> Job<T> for AdamStep<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run<V: Vector<E = T>>(self) {
        let (lr, r1, r2) = (V::splat(self.lr), V::splat(self.rho1), V::splat(self.rho2));
        let (o1, o2) = (V::splat(T::ONE - self.rho1), V::splat(T::ONE - self.rho2));
        // m_hat = m/c1 and v_hat = v/c2 as multiplications by the reciprocals: one division
        // per element instead of three.
        let (inv_c1, inv_c2, eps) = (
            V::splat(T::ONE / self.c1),
            V::splat(T::ONE / self.c2),
            V::splat(self.eps),
        );
        lanes::<V, 1, 3, 0>(
            [self.g],
            [self.p, self.m, self.v],
            [],
            #[inline(always)]
            |[g], [p, m, v]| {
                let m = r1.mul(m).add(o1.mul(g));
                let v = r2.mul(v).add(o2.mul(g).mul(g));
                let m_hat = m.mul(inv_c1);
                let v_hat = v.mul(inv_c2);
                let p = p.sub(lr.mul(m_hat).div(v_hat.sqrt().add(eps)));
                ([p, m, v], [])
            },
        );
    }
}

/// Adadelta: `h = rho*h + (1-rho)*g^2; dp = -sqrt(r + eps)/sqrt(h + eps)*g; p += dp;
/// r = rho*r + (1-rho)*dp^2`.
pub(crate) struct AdadeltaStep<'a, T> {
    pub p: &'a mut [T],
    pub h: &'a mut [T],
    pub r: &'a mut [T],
    pub g: &'a [T],
    pub rho: T,
    pub eps: T,
}

impl<T: Float> Job<T> for AdadeltaStep<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run<V: Vector<E = T>>(self) {
        let (rho, one_m, eps) = (V::splat(self.rho), V::splat(T::ONE - self.rho), V::splat(self.eps));
        let zero = V::splat(T::ZERO);
        lanes::<V, 1, 3, 0>(
            [self.g],
            [self.p, self.h, self.r],
            [],
            #[inline(always)]
            |[g], [p, h, r]| {
                let h = rho.mul(h).add(one_m.mul(g).mul(g));
                let dp = zero.sub(r.add(eps).sqrt().div(h.add(eps).sqrt()).mul(g));
                let p = p.add(dp);
                let r = rho.mul(r).add(one_m.mul(dp).mul(dp));
                ([p, h, r], [])
            },
        );
    }
}

/// Runs an update job on the active ISA.
pub(crate) fn apply<T: Float, J: Job<T, Out = ()>>(job: J) -> Result<()> {
    run(job)
}
