//! Zero allocation in a steady-state step: after the first steps of a shape, a training
//! step (forward in training mode, loss, backward, optimizer update) and an inference step
//! (forward in inference mode, predictions, accuracy) allocate nothing, on any thread that
//! runs them.
//!
//! A counting global allocator counts every `alloc`, `alloc_zeroed` and `realloc` while
//! counting is switched on, on the threads that run the steps: the test's own thread and
//! every worker of the rayon pool the steps run in (the workers do most of the work). A
//! thread that spawns another allocates while doing so, and the library starts no threads
//! or pools of its own, so nothing a step does escapes the count. What is not counted is
//! libtest's main thread: while the test runs (in a thread of its own), it wakes up after
//! 60 s (unless run with `--test-threads=1`) to allocate and print "test ... has been
//! running for over 60 seconds", which under qemu-aarch64 (45 to 75 s for this test with
//! its smaller batches there, 130 s with the native ones) can fall inside whichever
//! measured window is open then: a `Vec<TestDesc>` of 512 bytes and the 82-byte message.
//!
//! Every scenario runs in one `#[test]`, so no other test of this binary allocates while a
//! step is measured; the rayon pool is built before measuring and installed once around the
//! warm-up and the measured steps.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use scratchnet::kernels::Labels;
use scratchnet::layers::{Mode, Shape};
use scratchnet::models::{DeepConvNetConfig, Sequential, SimpleConvNetConfig, argmax, deep_conv_net, simple_conv_net};
use scratchnet::optim::{Adadelta, Adam, Optimizer, RMSProp, Sgd};

mod support;
use support::emulated;

/// Counts allocations (and reallocations) made on a [`counted`] thread while [`COUNTING`]
/// is on, then defers to [`System`].
struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Whether this thread runs steps, so that its allocations count: set by [`counted`].
    /// A `const` `Cell<bool>` needs no lazy initialisation and no destructor, so reading it
    /// inside the allocator allocates nothing and works on any thread at any time.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

/// Counts the calling thread's allocations from now on (the test's thread, and every pool
/// worker from its start handler).
fn counted() {
    COUNTED.with(|c| c.set(true));
}

impl CountingAlloc {
    fn count() {
        if COUNTING.load(Ordering::Relaxed) && COUNTED.try_with(Cell::get).unwrap_or(false) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; counting touches only atomics and a `const` thread-local `Cell`
// and allocates nothing itself.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::count();
        // SAFETY: the caller's contract for `alloc` (non-zero size) is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::count();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::count();
        // SAFETY: `ptr` was allocated by this allocator, that is by `System`, with `layout`;
        // the caller guarantees the rest of `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through this allocator) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Allocations made by `f` on the [`counted`] threads.
fn allocations(f: impl FnOnce()) -> usize {
    ALLOCS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    f();
    COUNTING.store(false, Ordering::SeqCst);
    ALLOCS.load(Ordering::SeqCst)
}

/// Steps of each shape before measuring.
const WARM_UP: usize = 2;
/// Measured rounds (each one step of every shape of a case).
const MEASURED: usize = 3;
/// Classes of the synthetic labels.
const CLASSES: usize = 10;

/// A deterministic batch of `1x28x28` images with their labels.
struct Batch {
    x: Vec<f32>,
    labels: Vec<usize>,
    shape: Shape,
}

impl Batch {
    fn new(batch: usize) -> Self {
        Self {
            x: (0..batch * 784).map(|i| ((i * 7919) % 256) as f32 / 255.0).collect(),
            labels: (0..batch).map(|i| (i * 7 + 3) % CLASSES).collect(),
            shape: Shape::new(&[batch, 1, 28, 28]).expect("shape"),
        }
    }
}

/// One training step as `scratchnet train` runs it: forward in training mode, loss,
/// backward, optimizer update, then the batch's correct predictions from the loss output.
fn train_step(net: &mut Sequential<f32>, opt: &mut dyn Optimizer<f32>, b: &Batch) {
    let l = net.gradient(&b.x, b.shape, Labels::Index(&b.labels)).expect("gradient");
    net.update(opt).expect("update");
    let out = net.loss_layer().output();
    let correct = out
        .chunks_exact(CLASSES)
        .zip(&b.labels)
        .filter(|(r, l)| argmax(r) == **l)
        .count();
    std::hint::black_box((l, correct));
}

/// One inference step as `scratchnet eval` runs it (forward in inference mode with the
/// loss, predictions from the loss output), then [`Sequential::predict`] and
/// [`Sequential::accuracy`] (in batches of `accuracy_batch`) over the same images.
fn infer_step(net: &mut Sequential<f32>, b: &Batch, accuracy_batch: usize) {
    let l = net
        .loss(&b.x, b.shape, Labels::Index(&b.labels), Mode::Infer)
        .expect("inference loss");
    let correct = net
        .loss_layer()
        .output()
        .chunks_exact(CLASSES)
        .zip(&b.labels)
        .filter(|(r, l)| argmax(r) == **l)
        .count();
    let scores = net.predict(&b.x, b.shape).expect("predict");
    let first = argmax(&scores[..CLASSES]);
    let acc = net
        .accuracy(&b.x, &b.shape.dims()[1..], &b.labels, accuracy_batch)
        .expect("accuracy");
    std::hint::black_box((l, correct, first, acc));
}

/// A model, its optimizer and the batch sizes it is stepped with, in turn.
struct Case {
    name: &'static str,
    net: Sequential<f32>,
    opt: Box<dyn Optimizer<f32>>,
    batches: &'static [usize],
    /// Batch size of [`Sequential::accuracy`]; the step's own batch size when `None`.
    accuracy_batch: Option<usize>,
}

/// Warms the case up ([`WARM_UP`] steps of every shape), then counts the allocations of
/// [`MEASURED`] rounds of training steps, of inference steps, and of one more round of
/// training after inference; `Err` describes any that allocated.
fn measure(pool: &rayon::ThreadPool, case: Case) -> Result<(), String> {
    let Case {
        name,
        mut net,
        mut opt,
        batches,
        accuracy_batch,
    } = case;
    let data: Vec<Batch> = batches.iter().map(|&n| Batch::new(n)).collect();
    let acc_batch = |b: &Batch| accuracy_batch.unwrap_or(b.shape.batch());
    let (train, infer, again) = pool.install(|| {
        // The count is live on this worker: a test that counts nothing would pass anyway.
        assert_eq!(
            allocations(|| drop(std::hint::black_box(vec![0u8; 1]))),
            1,
            "allocations on a pool worker are counted"
        );
        for _ in 0..WARM_UP {
            data.iter().for_each(|b| train_step(&mut net, opt.as_mut(), b));
        }
        let train = allocations(|| {
            for _ in 0..MEASURED {
                data.iter().for_each(|b| train_step(&mut net, opt.as_mut(), b));
            }
        });
        for _ in 0..WARM_UP {
            data.iter().for_each(|b| infer_step(&mut net, b, acc_batch(b)));
        }
        let infer = allocations(|| {
            for _ in 0..MEASURED {
                data.iter().for_each(|b| infer_step(&mut net, b, acc_batch(b)));
            }
        });
        // Back to training after inference: shapes already seen, so nothing either.
        let again = allocations(|| data.iter().for_each(|b| train_step(&mut net, opt.as_mut(), b)));
        (train, infer, again)
    });
    if train + infer + again == 0 {
        Ok(())
    } else {
        Err(format!(
            "{name}, batches {batches:?}: {train} allocations in {MEASURED} rounds of training steps, \
             {infer} in {MEASURED} rounds of inference steps, {again} in one round of training after inference"
        ))
    }
}

fn adam() -> Box<dyn Optimizer<f32>> {
    Box::new(Adam::new(0.001, 0.9, 0.999).expect("adam"))
}

/// DeepConvNet with the default configuration, fused or not.
fn deep(fused: bool) -> Sequential<f32> {
    deep_conv_net::<f32>(&DeepConvNetConfig {
        fused,
        ..DeepConvNetConfig::default()
    })
    .expect("DeepConvNet")
}

/// SimpleConvNet with the default configuration (fused) and [`CLASSES`] classes.
fn simple() -> Sequential<f32> {
    simple_fused(true)
}

/// SimpleConvNet with [`CLASSES`] classes, fused or not.
fn simple_fused(fused: bool) -> Sequential<f32> {
    simple_conv_net::<f32>(&SimpleConvNetConfig {
        output_size: CLASSES,
        fused,
        ..SimpleConvNetConfig::default()
    })
    .expect("SimpleConvNet")
}

/// Every case in one test, one after the other: a parallel test in this binary would
/// allocate while another measures.
#[test]
fn steady_state_steps_allocate_nothing() {
    counted();
    // Built before anything is measured: starting threads allocates.
    // Each worker reserves its GEMM packing buffer when it starts (as the CLI's pool does):
    // otherwise a worker that happens to run no GEMM during the warm-up steps would
    // allocate it in the first measured step it does run one in.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .start_handler(|_| {
            counted();
            scratchnet::kernels::gemm::reserve_thread_workspace::<f32>();
        })
        .build()
        .expect("thread pool");
    let case = |name, net, opt, batches| Case {
        name,
        net,
        opt,
        batches,
        accuracy_batch: None,
    };
    // DeepConvNet's batches are smaller under an emulator, where every floating-point
    // operation is slow: still several images per step, spread over both workers.
    let emulated = emulated();
    let cases = [
        case(
            "DeepConvNet (fused) + Adam",
            deep(true),
            adam(),
            if emulated { &[4] } else { &[16] },
        ),
        case(
            "DeepConvNet (unfused) + Adam",
            deep(false),
            adam(),
            if emulated { &[4] } else { &[8] },
        ),
        // Batch 32: the dropout mask (138,240 elements) is drawn in two parallel pieces.
        case("SimpleConvNet + Adam", simple(), adam(), &[16, 32]),
        case("SimpleConvNet (unfused) + Adam", simple_fused(false), adam(), &[8]),
        case(
            "SimpleConvNet + SGD",
            simple(),
            Box::new(Sgd::new(0.01).expect("sgd")),
            &[8],
        ),
        case(
            "SimpleConvNet + RMSProp",
            simple(),
            Box::new(RMSProp::new(0.01, 0.99).expect("rmsprop")),
            &[8],
        ),
        case(
            "SimpleConvNet + Adadelta",
            simple(),
            Box::new(Adadelta::new(0.95).expect("adadelta")),
            &[8],
        ),
        // A full batch and a short last one in turn, and accuracy over a partial last
        // batch: every shape has been seen, so nothing allocates.
        Case {
            accuracy_batch: Some(6),
            ..case(
                "DeepConvNet (fused) + Adam, alternating batches",
                deep(true),
                adam(),
                if emulated { &[8, 5] } else { &[16, 5] },
            )
        },
        Case {
            accuracy_batch: Some(3),
            ..case("SimpleConvNet + Adam, alternating batches", simple(), adam(), &[4, 7])
        },
    ];
    let failures: Vec<String> = cases.into_iter().filter_map(|c| measure(&pool, c).err()).collect();
    assert!(
        failures.is_empty(),
        "steady-state steps allocated:\n{}",
        failures.join("\n")
    );
}
