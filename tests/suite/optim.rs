//! The optimizers against values worked out by hand from the formulas in LAYERS.md.
//!
//! Every test runs two update steps on two parameters with different names and lengths,
//! `W1 = [1, -2, 0.5]` and `b1 = [0.1, 0.2]`, with gradients
//!
//! ```text
//! step 1: gW1 = [0.5, -1, 2],     gb1 = [1, -3]
//! step 2: gW1 = [-0.25, 0.5, 1],  gb1 = [2, 0]
//! ```
//!
//! so state must be kept per name (a shared or position-keyed state gives other numbers).
//! The expected values were worked by hand (the arithmetic is in the comments) and checked
//! digit for digit with python3 floats on the side; nothing here calls scratchnet's formula
//! code to get an expected value. Tolerance: 1e-12 relative (absolute near 0).

use scratchnet::optim::{Adadelta, Adam, Optimizer, Param, RMSProp, Sgd};

const W1: [f64; 3] = [1.0, -2.0, 0.5];
const B1: [f64; 2] = [0.1, 0.2];
const GW: [[f64; 3]; 2] = [[0.5, -1.0, 2.0], [-0.25, 0.5, 1.0]];
const GB: [[f64; 2]; 2] = [[1.0, -3.0], [2.0, 0.0]];

// Expected `(W1, b1)` after step 1 and after step 2.
type Expected = [([f64; 3], [f64; 2]); 2];

fn assert_close(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let tol = 1e-12 * w.abs().max(1e-3);
        assert!(
            (g - w).abs() <= tol,
            "{what}[{i}]: got {g:?}, want {w:?} (tolerance {tol:e})"
        );
    }
}

// Runs two steps of `opt` and compares with `expected` after each.
fn two_steps(opt: &mut dyn Optimizer<f64>, expected: Expected) {
    let (mut w, mut b) = (W1, B1);
    for (step, (want_w, want_b)) in expected.iter().enumerate() {
        opt.update(&mut [
            Param {
                name: "W1",
                value: &mut w,
                grad: &GW[step],
            },
            Param {
                name: "b1",
                value: &mut b,
                grad: &GB[step],
            },
        ])
        .expect("valid update");
        assert_close(&format!("{} step {} W1", opt.name(), step + 1), &w, want_w);
        assert_close(&format!("{} step {} b1", opt.name(), step + 1), &b, want_b);
    }
}

// SGD(lr = 0.1): p -= 0.1*g.
// - step 1: W1 = [1 - 0.05, -2 + 0.1, 0.5 - 0.2] = [0.95, -1.9, 0.3];
//   b1 = [0.1 - 0.1, 0.2 + 0.3] = [0, 0.5].
// - step 2: W1 = [0.95 + 0.025, -1.9 - 0.05, 0.3 - 0.1] = [0.975, -1.95, 0.2];
//   b1 = [0 - 0.2, 0.5 - 0] = [-0.2, 0.5].
#[test]
fn sgd_two_steps() {
    let mut opt = Sgd::new(0.1).unwrap();
    two_steps(
        &mut opt,
        [([0.95, -1.9, 0.3], [0.0, 0.5]), ([0.975, -1.95, 0.2], [-0.2, 0.5])],
    );
}

// RMSProp(lr = 0.1, rho = 0.5), eps = 1e-6 inside the root:
// h = 0.5*h + 0.5*g^2, p -= 0.1*g/sqrt(h + 1e-6).
// - step 1 (h starts at 0), h = 0.5*g^2:
//   W1[0]: h = 0.125,  p = 1 - 0.05/sqrt(0.125001) = 1 - 0.05/0.3535548...  = 0.8585792094447213
//   W1[1]: h = 0.5,    p = -2 + 0.1/sqrt(0.500001) = -2 + 0.1414212148...  = -1.8585787851838347
//   W1[2]: h = 2,      p = 0.5 - 0.2/sqrt(2.000001) = 0.5 - 0.1414213209  = 0.35857867911801633
//   b1[0]: h = 0.5,    p = 0.1 - 0.1/sqrt(0.500001) = -0.0414212148161654
//   b1[1]: h = 4.5,    p = 0.2 + 0.3/sqrt(4.500001) = 0.2 + 0.1414213405 = 0.3414213405238281
// - step 2:
//   W1[0]: h = 0.0625 + 0.03125 = 0.09375, p += 0.025/sqrt(0.093751) = 0.9402284320761345
//   W1[1]: h = 0.25 + 0.125 = 0.375,       p -= 0.05/sqrt(0.375001)  = -1.9402283344106142
//   W1[2]: h = 1 + 0.5 = 1.5,              p -= 0.1/sqrt(1.500001)   = 0.2769290482417828
//   b1[0]: h = 0.25 + 2 = 2.25,            p -= 0.2/sqrt(2.250001)   = -0.17475451851987897
//   b1[1]: g = 0, so p is unchanged        = 0.3414213405238281
#[test]
fn rmsprop_two_steps() {
    let mut opt = RMSProp::new(0.1, 0.5).unwrap();
    two_steps(
        &mut opt,
        [
            (
                [0.8585792094447213, -1.8585787851838347, 0.35857867911801633],
                [-0.0414212148161654, 0.3414213405238281],
            ),
            (
                [0.9402284320761345, -1.9402283344106142, 0.2769290482417828],
                [-0.17475451851987897, 0.3414213405238281],
            ),
        ],
    );
}

// Adam(lr = 0.1, rho1 = 0.5, rho2 = 0.75), eps = 1e-8 outside the root.
// - step 1: t = 1, 1 - rho1 = 0.5, 1 - rho2 = 0.25, so m_hat = g, v_hat = g^2 and
//   p -= 0.1*g/(|g| + 1e-8):
//   W1 = [1 - 0.05/0.50000001, -2 + 0.1/1.00000001, 0.5 - 0.2/2.00000001]
//      = [0.900000002, -1.900000001, 0.4000000005];
//   b1 = [0.1 - 0.1/1.00000001, 0.2 + 0.3/3.00000001] = [9.99999986e-10, 0.2999999996666667].
// - step 2: t = 2, 1 - 0.5^2 = 0.75, 1 - 0.75^2 = 0.4375.
//   W1[0]: m = 0.5*0.25 + 0.5*(-0.25) = 0  -> unchanged 0.900000002
//   W1[1]: m = 0.5*(-0.5) + 0.5*0.5 = 0    -> unchanged -1.900000001
//   W1[2]: m = 0.5*1 + 0.5*1 = 1, m_hat = 4/3; v = 0.75*1 + 0.25*1 = 1, v_hat = 1/0.4375,
//          sqrt = 1.5118578920369088; p = 0.4000000005 - 0.1*(4/3)/1.51185790...
//          = 0.4000000005 - 0.0881917097... = 0.31180829071451366
//   b1[0]: m = 0.5*0.5 + 0.5*2 = 1.25, m_hat = 1.6666...; v = 0.75*0.25 + 0.25*4 = 1.1875,
//          v_hat = 2.7142857..., sqrt = 1.6475089...; p -= 0.1*1.6667/1.6475 = 0.10116...
//          -> -0.10116282816377895
//   b1[1]: m = 0.5*(-1.5) + 0 = -0.75, m_hat = -1; v = 0.75*2.25 = 1.6875,
//          v_hat = 3.857142857..., sqrt = 1.9639610...; p += 0.1/1.96396 = 0.0509175...
//          -> 0.350917507129139
#[test]
fn adam_two_steps() {
    let mut opt = Adam::new(0.1, 0.5, 0.75).unwrap();
    two_steps(
        &mut opt,
        [
            (
                [0.900000002, -1.900000001, 0.4000000005],
                [9.999999855958563e-10, 0.2999999996666667],
            ),
            (
                [0.900000002, -1.900000001, 0.31180829071451366],
                [-0.10116282816377895, 0.350917507129139],
            ),
        ],
    );
    assert_eq!(opt.step_count(), 2);
}

// Adadelta(rho = 0.5), eps = 1e-6: h = 0.5*h + 0.5*g^2; dp = -sqrt(r + eps)/sqrt(h + eps)*g
// with r from the previous step; p += dp; r = 0.5*r + 0.5*dp^2.
// - step 1 (h = r = 0): h = g^2/2, dp = -1e-3*g/sqrt(g^2/2 + 1e-6) ~ -sqrt(2)*1e-3*sign(g):
//   W1 = [1 - 0.00141421208, -2 + 0.00141421215, 0.5 - 0.00141421321]
//      = [0.9985857920944472, -1.9985857878518383, 0.49858578679118015];
//   b1 = [0.09858578785183836, 0.2014142134052383]; r = dp^2/2 ~ 1e-6.
// - step 2: e.g. W1[0]: h = 0.0625 + 0.03125 = 0.09375, r = 0.99999...e-6,
//   dp = -sqrt(1.99999e-6)/sqrt(0.093751)*(-0.25) = +0.00115469 -> 0.9997404841651003;
//   W1 = [0.9997404841651003, -1.9997404862732715, 0.49743108678203835];
//   b1 = [0.09670017113050751, 0.2014142134052383] (b1[1]: g = 0, dp = 0).
#[test]
fn adadelta_two_steps() {
    let mut opt = Adadelta::new(0.5).unwrap();
    two_steps(
        &mut opt,
        [
            (
                [0.9985857920944472, -1.9985857878518383, 0.49858578679118015],
                [0.09858578785183836, 0.2014142134052383],
            ),
            (
                [0.9997404841651003, -1.9997404862732715, 0.49743108678203835],
                [0.09670017113050751, 0.2014142134052383],
            ),
        ],
    );
}

// The reference defaults: SGD(lr=0.01), RMSProp(lr=0.01, rho=0.9), Adam(lr=0.001,
// rho1=0.9, rho2=0.999), Adadelta(rho=0.95), with eps 1e-6 (RMSProp, inside the root),
// 1e-8 (Adam) and 1e-6 (Adadelta). Two steps of each, same data as above.
// - SGD step 1: W1 = [1 - 0.005, -2 + 0.01, 0.5 - 0.02] = [0.995, -1.99, 0.48],
//   b1 = [0.1 - 0.01, 0.2 + 0.03] = [0.09, 0.23]; step 2: W1 = [0.9975, -1.995, 0.47],
//   b1 = [0.07, 0.23].
// - RMSProp step 1: h = 0.1*g^2, p -= 0.01*g/sqrt(0.1*g^2 + 1e-6) ~ -0.0316*sign(g):
//   W1[0] = 1 - 0.005/sqrt(0.025001) = 0.9683778558348752.
// - Adam step 1: m_hat = g, v_hat = g^2: p -= 0.001*g/(|g| + 1e-8) ~ -0.001*sign(g):
//   W1[0] = 1 - 0.0005/0.50000001 = 0.99900000002.
// - Adadelta step 1: h = 0.05*g^2, dp = -1e-3*g/sqrt(0.05*g^2 + 1e-6) ~ -sqrt(20)*1e-3*sign(g):
//   W1[0] = 1 - 0.0005/sqrt(0.012501) = 0.9955280429197062.
#[test]
fn reference_defaults() {
    two_steps(
        &mut Sgd::new(0.01).unwrap(),
        [
            ([0.995, -1.99, 0.48], [0.09, 0.23]),
            ([0.9975, -1.995, 0.47], [0.07, 0.23]),
        ],
    );
    two_steps(
        &mut RMSProp::new(0.01, 0.9).unwrap(),
        [
            (
                [0.9683778558348752, -1.9683773815110133, 0.46837726292671283],
                [0.06837738151101337, 0.23162275903348922],
            ),
            (
                [0.9831217950362606, -1.9831215130217228, 0.4536330833374966],
                [0.03980598209405912, 0.23162275903348922],
            ),
        ],
    );
    two_steps(
        &mut Adam::new(0.001, 0.9, 0.999).unwrap(),
        [
            (
                [0.99900000002, -1.9990000000099999, 0.499000000005],
                [0.09900000001, 0.20099999999666668],
            ),
            (
                [0.9987336629870784, -1.998733662973709, 0.4980678203720851],
                [0.09803481799028167, 0.20167005824764375],
            ),
        ],
    );
    two_steps(
        &mut Adadelta::new(0.95).unwrap(),
        [
            (
                [0.9955280429197062, -1.9955279087656892, 0.4955278752252984],
                [0.09552790876568917, 0.20447213098596792],
            ),
            (
                [0.998414640316359, -1.9984146216222929, 0.49264113350181266],
                [0.08984259624127253, 0.20447213098596792],
            ),
        ],
    );
}

// State is keyed by name, not by call order: updating `b1` before `W1` gives the same
// numbers (Adam, which has the most state), and a third name starts from fresh state.
#[test]
fn state_is_per_name() {
    let mut opt = Adam::new(0.1, 0.5, 0.75).unwrap();
    let (mut w, mut b) = (W1, B1);
    for step in 0..2 {
        opt.update(&mut [
            Param {
                name: "b1",
                value: &mut b,
                grad: &GB[step],
            },
            Param {
                name: "W1",
                value: &mut w,
                grad: &GW[step],
            },
        ])
        .unwrap();
    }
    assert_close("W1", &w, &[0.900000002, -1.900000001, 0.31180829071451366]);
    assert_close("b1", &b, &[-0.10116282816377895, 0.350917507129139]);
    // A new name at step 3 has m = v = 0: m = 0.5*g, v = 0.25*g^2, t = 3:
    // m_hat = 0.5*g/(1 - 0.125) = g*4/7, v_hat = 0.25*g^2/(1 - 0.421875) = g^2*16/37,
    // p -= 0.1*(4/7)/(4/sqrt(37) + 1e-8) for g = 1: without eps 0.1*sqrt(37)/7 = 0.08689660757,
    // eps shrinks it by a factor 1/(1 + 1e-8*sqrt(37)/4) -> 0.0868966062543 -> 0.9131033937457397.
    let mut c = [1.0];
    opt.update(&mut [Param {
        name: "c1",
        value: &mut c,
        grad: &[1.0],
    }])
    .unwrap();
    assert_close("c1", &c, &[0.9131033937457397]);
}
