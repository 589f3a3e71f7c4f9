//! CUDA checks that need the simulated driver (tests/cuda_sim, issue 16): injected driver
//! failures surface as clear statuses with nothing leaked, a host read of device memory
//! crashes, a missing stream wait reads stale data while the DLPack handoff does not, and
//! copies across two devices. tests/cuda_sim/run runs them with the simulator first on
//! LD_LIBRARY_PATH; elsewhere (no driver, or a real one) each test prints "skipped: ..." and
//! returns (Rust has no run-time skip).
//!
//! The simulator's controls are found with dlsym in the libcuda.so dlshare loaded:
//! `dlsim_counter` (device/pinned bytes, allocations, events, streams, injected faults),
//! `dlsim_configure` (fault injection, the syntax of DLSHARE_SIM_FAULTS) and `dlsim_gate` (holds
//! a stream's work). Scenarios that must start from a fresh process (the first use of the
//! staging buffers, cuInit, the context) and the crash run in a child process: this test binary
//! again, one `#[ignore]`d test selected by name, with DLSHARE_SIM_FAULTS in its environment.
//! The scenarios assume the default path for pageable memory (the staging buffers, whose driver
//! calls they count): tests/cuda_sim/run runs them without DLSHARE_CUDA_PAGEABLE.

mod common;

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::sync::atomic::AtomicUsize;

use common::*;
use dlshare::ffi::cuda::*;

const CUDA_HOST0: DLDevice = DLDevice {
    device_type: 3,
    device_id: 0,
};
const CUDA1: DLDevice = DLDevice {
    device_type: 2,
    device_id: 1,
};

unsafe extern "C" {
    fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}
const RTLD_NOW: c_int = 2;
const RTLD_NOLOAD: c_int = 4;

type Counter = unsafe extern "C" fn(*const c_char) -> i64;
type Configure = unsafe extern "C" fn(*const c_char) -> c_int;
type Gate = unsafe extern "C" fn(*mut c_void, c_int) -> c_int;

/// The simulated driver's controls (and its driver functions, for a consumer of our own).
struct Sim {
    lib: *mut c_void,
    counter: Counter,
    configure: Configure,
    gate: Gate,
}

impl Sim {
    /// The simulator dlshare runs on, or None (with the skip line) when it runs on something else.
    fn get(test: &str) -> Option<Sim> {
        if !dlshare_cuda_available() {
            let why = dlshare::cuda::unavailable_reason().unwrap_or_default();
            println!("{test}: skipped: no CUDA device ({why})");
            return None;
        }
        // SAFETY: dlshare has loaded libcuda.so (CUDA is available); NOLOAD only finds it.
        let lib = unsafe { dlopen(c"libcuda.so".as_ptr(), RTLD_NOW | RTLD_NOLOAD) };
        let sym = |name: &CStr| {
            // SAFETY: a lookup in a loaded library.
            (!lib.is_null())
                .then(|| unsafe { dlsym(lib, name.as_ptr()) })
                .filter(|p| !p.is_null())
        };
        let (Some(c), Some(f), Some(g)) = (
            sym(c"dlsim_counter"),
            sym(c"dlsim_configure"),
            sym(c"dlsim_gate"),
        ) else {
            println!("{test}: skipped: not the simulated driver (run tests/cuda_sim/run)");
            return None;
        };
        // SAFETY: the simulator's exports have these signatures (tests/cuda_sim/sim.c).
        unsafe {
            Some(Sim {
                lib,
                counter: std::mem::transmute::<*mut c_void, Counter>(c),
                configure: std::mem::transmute::<*mut c_void, Configure>(f),
                gate: std::mem::transmute::<*mut c_void, Gate>(g),
            })
        }
    }

    fn counter(&self, name: &str) -> i64 {
        let name = CString::new(name).unwrap();
        // SAFETY: a NUL-terminated name.
        let v = unsafe { (self.counter)(name.as_ptr()) };
        assert!(v >= 0, "unknown simulator counter {name:?}");
        v
    }

    fn faults(&self, spec: &str) {
        let spec = CString::new(spec).unwrap();
        // SAFETY: a NUL-terminated spec.
        assert_eq!(unsafe { (self.configure)(spec.as_ptr()) }, 0, "{spec:?}");
    }

    fn gate(&self, stream: *mut c_void, closed: bool) {
        // SAFETY: a live stream handle.
        assert_eq!(unsafe { (self.gate)(stream, closed as c_int) }, 0);
    }

    /// A driver function of the simulator, by name.
    fn func<F: Copy>(&self, name: &CStr) -> F {
        // SAFETY: a lookup in the loaded library.
        let p = unsafe { dlsym(self.lib, name.as_ptr()) };
        assert!(!p.is_null(), "{name:?} missing");
        assert_eq!(size_of::<F>(), size_of::<*mut c_void>());
        // SAFETY: the caller names the function's real signature.
        unsafe { std::mem::transmute_copy::<*mut c_void, F>(&p) }
    }

    /// What must come back to where it was: the simulator's memory and handles, dlshare's
    /// storages and device bytes.
    fn snapshot(&self) -> Vec<(String, i64)> {
        let mut all: Vec<(String, i64)> = [
            "device_bytes",
            "device_allocs",
            "pinned_bytes",
            "pinned_allocs",
            "registered",
            "streams",
            "events",
            "contexts",
            "pending",
        ]
        .iter()
        .map(|n| (n.to_string(), self.counter(n)))
        .collect();
        all.push(("dlshare live storages".into(), live() as i64));
        let mut bytes = 0;
        // SAFETY: writable output.
        ok(unsafe { dlshare_cuda_memory_allocated(0, &mut bytes) });
        all.push(("dlshare device bytes".into(), bytes as i64));
        all
    }
}

fn to_device(mut o: dlshare_options, device: DLDevice) -> dlshare_options {
    o.has_device = true;
    o.device = device;
    o
}

fn on_stream(mut o: dlshare_options, stream: *mut c_void) -> dlshare_options {
    o.stream = stream;
    o
}

fn host_view(buf: &Buf, dtype: DLDataType, shape: &[i64]) -> dlshare_view {
    dlshare_view {
        release: None,
        release_ctx: std::ptr::null_mut(),
        ..view(buf.ptr(), dtype, shape, None, 0, &AtomicUsize::new(0))
    }
}

fn download(h: *const dlshare_tensor) -> Vec<u8> {
    let (s, back, _) = convert(h, &to_device(opts(COPY), CPU));
    ok(s);
    let bytes = contents(back);
    release(back);
    bytes
}

fn floats(n: usize, seed: f32) -> Vec<f32> {
    (0..n).map(|i| i as f32 * 0.5 + seed).collect()
}

/// Staging buffer size the library uses (DLSHARE_CUDA_CHUNK_MB, default 8 MiB).
fn chunk_bytes() -> usize {
    std::env::var("DLSHARE_CUDA_CHUNK_MB")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&mb| (1..=1024).contains(&mb))
        .unwrap_or(8)
        << 20
}

/// Runs the `#[ignore]`d test `name` of this binary in a child process with `env`.
fn child(name: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        name,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[track_caller]
fn child_passes(name: &str, env: &[(&str, &str)]) {
    let out = child(name, env);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child {name} failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "child {name} did not run:\n{text}"
    );
}

// ---- injected faults --------------------------------------------------------------------------

/// One fault scenario: what to inject, what to do, the status and the words the message needs.
struct Fault {
    spec: &'static str,
    action: fn(&Ctx) -> dlshare_status,
    status: dlshare_status,
    words: &'static [&'static str],
}

/// Inputs the actions share (made before the baseline is taken).
struct Ctx {
    host: Buf,
    big: Buf,
    n: usize,
    big_n: usize,
    on_device: *mut dlshare_tensor,
    stream: *mut c_void,
}

fn h2d(buf: &Buf, n: usize, stream: *mut c_void) -> dlshare_status {
    let shape = [n as i64];
    let v = host_view(buf, F32, &shape);
    let (s, h, d) = from_view(&v, &on_stream(to_device(opts(COPY), CUDA0), stream));
    if s == DLSHARE_OK {
        release(h);
    } else {
        assert_eq!(h, SENTINEL, "output written on failure");
        assert_untouched(&d);
    }
    s
}

fn convert_to(c: &Ctx, o: dlshare_options) -> dlshare_status {
    let (s, h, d) = convert(c.on_device, &o);
    if s == DLSHARE_OK {
        release(h);
    } else {
        assert_eq!(h, SENTINEL, "output written on failure");
        assert_untouched(&d);
    }
    s
}

fn create(device: DLDevice, zeroed: bool) -> dlshare_status {
    let shape = [1000i64];
    let mut h = SENTINEL;
    // SAFETY: valid pointers.
    let s = unsafe {
        if zeroed {
            dlshare_tensor_zeros(F32, 1, shape.as_ptr(), device, &mut h)
        } else {
            dlshare_tensor_empty(F32, 1, shape.as_ptr(), device, &mut h)
        }
    };
    if s == DLSHARE_OK {
        release(h);
    } else {
        assert_eq!(h, SENTINEL, "output written on failure");
    }
    s
}

/// A small host -> cuda:N -> host round trip.
fn create_on(device: DLDevice) -> dlshare_status {
    let values = to_bytes(&floats(3 << 20, 7.0));
    let buf = Buf::from_bytes(&values);
    let shape = [3i64 << 20];
    let (s, d, _) = from_view(
        &host_view(&buf, F32, &shape),
        &to_device(opts(COPY), device),
    );
    if s == DLSHARE_OK {
        assert!(download(d) == values);
        release(d);
    }
    s
}

fn faults() -> Vec<Fault> {
    vec![
        Fault {
            spec: "cuMemAlloc_v2:1",
            action: |_| create(CUDA0, false),
            status: DLSHARE_ERR_OUT_OF_MEMORY,
            words: &["cuMemAlloc", "CUDA_ERROR_OUT_OF_MEMORY"],
        },
        Fault {
            spec: "cuMemsetD8Async:1",
            action: |_| create(CUDA0, true),
            status: DLSHARE_ERR_CUDA,
            words: &["cuMemsetD8Async", "CUDA_ERROR_UNKNOWN"],
        },
        Fault {
            spec: "cuMemHostAlloc:1",
            action: |_| create(CUDA_HOST0, true),
            status: DLSHARE_ERR_OUT_OF_MEMORY,
            words: &["cuMemHostAlloc", "CUDA_ERROR_OUT_OF_MEMORY"],
        },
        Fault {
            spec: "cuMemAlloc_v2:1",
            action: |c| h2d(&c.host, c.n, std::ptr::null_mut()),
            status: DLSHARE_ERR_OUT_OF_MEMORY,
            words: &["cuMemAlloc", "CUDA_ERROR_OUT_OF_MEMORY"],
        },
        Fault {
            // the third buffer of a pipelined host -> device copy
            spec: "cuMemcpyHtoDAsync_v2:3",
            action: |c| h2d(&c.big, c.big_n, std::ptr::null_mut()),
            status: DLSHARE_ERR_CUDA,
            words: &["cuMemcpyHtoDAsync", "CUDA_ERROR_UNKNOWN"],
        },
        Fault {
            spec: "cuMemcpyHtoDAsync_v2:2:719",
            action: |c| h2d(&c.big, c.big_n, c.stream),
            status: DLSHARE_ERR_CUDA,
            words: &["cuMemcpyHtoDAsync", "CUDA_ERROR_LAUNCH_FAILED"],
        },
        Fault {
            spec: "cuMemcpyDtoHAsync_v2:1",
            action: |c| convert_to(c, to_device(opts(COPY), CPU)),
            status: DLSHARE_ERR_CUDA,
            words: &["cuMemcpyDtoHAsync"],
        },
        Fault {
            spec: "cuMemcpyDtoHAsync_v2:1",
            action: |c| convert_to(c, to_device(opts(COPY), CUDA_HOST0)),
            status: DLSHARE_ERR_CUDA,
            words: &["cuMemcpyDtoHAsync"],
        },
        Fault {
            spec: "cuMemcpyDtoDAsync_v2:1",
            action: |c| convert_to(c, opts(COPY)),
            status: DLSHARE_ERR_CUDA,
            words: &["cuMemcpyDtoDAsync"],
        },
        Fault {
            spec: "cuMemcpyDtoDAsync_v2:1",
            action: |c| convert_to(c, on_stream(opts(COPY), c.stream)),
            status: DLSHARE_ERR_CUDA,
            words: &["cuMemcpyDtoDAsync"],
        },
        Fault {
            // a cast of device data goes down and up again: the way up fails
            spec: "cuMemcpyHtoDAsync_v2:1",
            action: |c| convert_to(c, opts_dtype(COPY, F64)),
            status: DLSHARE_ERR_CUDA,
            words: &["cuMemcpyHtoDAsync"],
        },
        Fault {
            spec: "cuStreamSynchronize:1",
            action: |c| h2d(&c.host, c.n, std::ptr::null_mut()),
            status: DLSHARE_ERR_CUDA,
            words: &["cuStreamSynchronize"],
        },
        Fault {
            spec: "cuEventCreate:1",
            action: |c| h2d(&c.host, c.n, c.stream),
            status: DLSHARE_ERR_CUDA,
            words: &["cuEventCreate"],
        },
        Fault {
            spec: "cuStreamWaitEvent:1",
            action: |c| convert_to(c, on_stream(opts(COPY), c.stream)),
            status: DLSHARE_ERR_CUDA,
            words: &["cuStreamWaitEvent"],
        },
        Fault {
            spec: "cuEventSynchronize:2",
            action: |c| convert_to(c, to_device(opts(COPY), CPU)),
            status: DLSHARE_ERR_CUDA,
            words: &["cuEventSynchronize"],
        },
        Fault {
            spec: "cuCtxPushCurrent_v2:1",
            action: |c| h2d(&c.host, c.n, std::ptr::null_mut()),
            status: DLSHARE_ERR_CUDA,
            words: &["cuCtxPushCurrent"],
        },
        Fault {
            spec: "cuCtxSynchronize:1",
            action: |_| dlshare_cuda_synchronize(0),
            status: DLSHARE_ERR_CUDA,
            words: &["cuCtxSynchronize"],
        },
        Fault {
            spec: "cuEventRecord:1",
            action: |_| dlshare_cuda_stream_wait(0, 1),
            status: DLSHARE_ERR_CUDA,
            words: &["cuEventRecord"],
        },
        Fault {
            // the context becomes unusable: every call that does work fails from now on
            spec: "lost:1",
            action: |c| h2d(&c.big, c.big_n, std::ptr::null_mut()),
            status: DLSHARE_ERR_CUDA,
            words: &["CUDA_ERROR_ILLEGAL_ADDRESS"],
        },
        Fault {
            spec: "lost:1",
            action: |c| convert_to(c, to_device(opts(COPY), CPU)),
            status: DLSHARE_ERR_CUDA,
            words: &["CUDA_ERROR_ILLEGAL_ADDRESS"],
        },
        Fault {
            spec: "lost:1",
            action: |_| create(CUDA0, true),
            status: DLSHARE_ERR_CUDA,
            words: &["CUDA_ERROR_ILLEGAL_ADDRESS"],
        },
        Fault {
            spec: "lost:1",
            action: |_| dlshare_cuda_synchronize(0),
            status: DLSHARE_ERR_CUDA,
            words: &["cuCtxSynchronize", "CUDA_ERROR_ILLEGAL_ADDRESS"],
        },
    ]
}

#[test]
fn every_injected_fault_is_a_clear_status_and_leaks_nothing() {
    let Some(sim) = Sim::get("every_injected_fault_is_a_clear_status_and_leaks_nothing") else {
        return;
    };
    let _g = lock_exclusive();
    let n = 4096;
    let big_n = 5 * chunk_bytes() / 4; // five staging buffers of float32
    let c = {
        let host = Buf::from_bytes(&to_bytes(&floats(n, 1.0)));
        let big = Buf::from_bytes(&to_bytes(&floats(big_n, 2.0)));
        let shape = [n as i64];
        let (s, on_device, _) = from_view(
            &host_view(&host, F32, &shape),
            &to_device(opts(COPY), CUDA0),
        );
        ok(s);
        let mut stream = std::ptr::null_mut();
        // SAFETY: writable output.
        ok(unsafe { dlshare_cuda_stream(0, &mut stream) });
        Ctx {
            host,
            big,
            n,
            big_n,
            on_device,
            stream: std::ptr::without_provenance_mut(1), // the legacy default stream, a caller's stream
        }
    };
    let want = to_bytes(&floats(n, 1.0));
    // staging buffers, the stream and every lazily made resource exist before the baseline
    assert_eq!(h2d(&c.big, c.big_n, std::ptr::null_mut()), DLSHARE_OK);
    assert_eq!(h2d(&c.big, c.big_n, c.stream), DLSHARE_OK);
    assert_eq!(download(c.on_device), want);
    ok(dlshare_cuda_synchronize(0));
    for (i, f) in faults().iter().enumerate() {
        let what = format!("#{i} {}", f.spec);
        let before = sim.snapshot();
        let injected = sim.counter("faults");
        sim.faults(f.spec);
        let status = (f.action)(&c);
        sim.faults("");
        assert!(
            sim.counter("faults") > injected,
            "{what}: no fault was injected"
        );
        let msg = fails(status, f.status);
        for w in f.words {
            assert!(msg.contains(w), "{what}: {w:?} missing in {msg:?}");
        }
        ok(dlshare_cuda_synchronize(0));
        assert_eq!(sim.snapshot(), before, "{what}: something leaked");
        // the device still works (the fault was one call, or the context came back)
        assert_eq!(
            download(c.on_device),
            want,
            "{what}: the device is unusable after"
        );
        assert_eq!(h2d(&c.big, c.big_n, std::ptr::null_mut()), DLSHARE_OK);
        println!("fault {what}: {msg}");
    }
    release(c.on_device);
}

#[test]
fn a_failed_import_copy_leaves_the_producer_to_the_caller() {
    let Some(sim) = Sim::get("a_failed_import_copy_leaves_the_producer_to_the_caller") else {
        return;
    };
    let _g = lock_exclusive();
    let values = floats(1000, 3.0);
    let shape = [values.len() as i64];
    let buf = Buf::from_bytes(&to_bytes(&values));
    let (s, d, _) = from_view(&host_view(&buf, F32, &shape), &to_device(opts(COPY), CUDA0));
    ok(s);
    let mut m = std::ptr::null_mut();
    // SAFETY: valid pointers.
    ok(unsafe { dlshare_tensor_to_dlpack(d, &mut m) });
    release(d);
    let before = sim.snapshot();
    for spec in ["cuMemcpyDtoDAsync_v2:1", "cuMemAlloc_v2:1", "lost:1"] {
        sim.faults(spec);
        let (s, h, _) = import_versioned(
            m,
            &on_stream(opts(COPY), std::ptr::without_provenance_mut(1)),
        );
        sim.faults("");
        assert_ne!(s, DLSHARE_OK, "{spec}");
        assert_eq!(h, SENTINEL);
        // SAFETY: `m` is still the caller's: its tensor is readable.
        assert_eq!(unsafe { (*m).dl_tensor.device }, CUDA0, "{spec}");
        assert_eq!(sim.snapshot(), before, "{spec}: something leaked");
    }
    call_deleter_versioned(m);
    assert!(sim.counter("faults") >= 3);
}

#[test]
#[ignore = "child process of the_first_staging_allocation_failing_leaks_nothing"]
fn child_staging_allocation_fails() {
    let sim = Sim::get("child_staging_allocation_fails").expect("runs on the simulator");
    let n = chunk_bytes() / 4 * 2;
    let buf = Buf::from_bytes(&to_bytes(&floats(n, 4.0)));
    let shape = [n as i64];
    let v = host_view(&buf, F32, &shape);
    // DLSHARE_SIM_FAULTS=cuMemHostAlloc:3: the third of the four staging buffers fails
    let (s, h, _) = from_view(&v, &to_device(opts(COPY), CUDA0));
    let msg = fails(s, DLSHARE_ERR_OUT_OF_MEMORY);
    assert!(msg.contains("staging buffer"), "{msg}");
    assert_eq!(h, SENTINEL);
    assert_eq!(sim.counter("faults"), 1);
    assert_eq!(sim.counter("pinned_bytes"), 0, "staging buffers leaked");
    assert_eq!(sim.counter("pinned_allocs"), 0, "staging buffers leaked");
    assert_eq!(sim.counter("device_bytes"), 0, "the output leaked");
    // the next copy makes the buffers and works
    let (s, h, _) = from_view(&v, &to_device(opts(COPY), CUDA0));
    ok(s);
    assert!(download(h) == to_bytes(&floats(n, 4.0)));
    release(h);
    assert_eq!(sim.counter("device_bytes"), 0);
}

#[test]
fn the_first_staging_allocation_failing_leaks_nothing() {
    if Sim::get("the_first_staging_allocation_failing_leaks_nothing").is_none() {
        return;
    }
    child_passes(
        "child_staging_allocation_fails",
        &[("DLSHARE_SIM_FAULTS", "cuMemHostAlloc:3")],
    );
}

#[test]
#[ignore = "child process of a_driver_that_does_not_start_is_device_unavailable"]
fn child_driver_does_not_start() {
    let test = "child_driver_does_not_start";
    let spec = std::env::var("DLSHARE_SIM_FAULTS").unwrap();
    assert!(!dlshare_cuda_available());
    let why = dlshare::cuda::unavailable_reason().unwrap();
    let mut h = SENTINEL;
    let shape = [4i64];
    // SAFETY: valid pointers.
    let s = unsafe { dlshare_tensor_empty(F32, 1, shape.as_ptr(), CUDA0, &mut h) };
    let msg = fails(s, DLSHARE_ERR_DEVICE_UNAVAILABLE);
    assert_eq!(h, SENTINEL);
    let (name, code) = if spec.starts_with("cuInit") {
        ("cuInit", "CUDA_ERROR_NO_DEVICE")
    } else {
        ("cuDeviceGetCount", "CUDA_ERROR_UNKNOWN")
    };
    assert!(why.contains(name) && why.contains(code), "{why}");
    assert!(msg.contains(name) && msg.contains(code), "{msg}");
    println!("{test}: {msg}");
}

#[test]
fn a_driver_that_does_not_start_is_device_unavailable() {
    if Sim::get("a_driver_that_does_not_start_is_device_unavailable").is_none() {
        return;
    }
    for spec in ["cuInit:1:100", "cuDeviceGetCount:1"] {
        child_passes(
            "child_driver_does_not_start",
            &[("DLSHARE_SIM_FAULTS", spec)],
        );
    }
}

#[test]
#[ignore = "child process of a_device_whose_context_fails_is_unavailable_and_leaks_nothing"]
fn child_context_fails() {
    let sim = Sim::get("child_context_fails").expect("runs on the simulator");
    let spec = std::env::var("DLSHARE_SIM_FAULTS").unwrap();
    let name = spec.split(':').next().unwrap();
    for _ in 0..2 {
        let mut h = SENTINEL;
        let shape = [4i64];
        // SAFETY: valid pointers.
        let s = unsafe { dlshare_tensor_empty(F32, 1, shape.as_ptr(), CUDA0, &mut h) };
        let msg = fails(s, DLSHARE_ERR_DEVICE_UNAVAILABLE);
        assert!(msg.contains(name), "{msg}");
        assert!(msg.contains("cannot allocate on cuda:0"), "{msg}");
    }
    assert_eq!(
        sim.counter("contexts"),
        0,
        "the primary context stays retained"
    );
    assert_eq!(sim.counter("streams"), 0);
}

#[test]
fn a_device_whose_context_fails_is_unavailable_and_leaks_nothing() {
    if Sim::get("a_device_whose_context_fails_is_unavailable_and_leaks_nothing").is_none() {
        return;
    }
    for spec in ["cuDevicePrimaryCtxRetain:1+", "cuStreamCreate:1+"] {
        child_passes("child_context_fails", &[("DLSHARE_SIM_FAULTS", spec)]);
    }
}

// ---- device memory the host cannot touch ------------------------------------------------------

#[test]
#[ignore = "child process of a_host_read_of_device_memory_crashes"]
fn child_reads_device_memory_on_the_host() {
    let shape = [1024i64];
    let mut h = SENTINEL;
    // SAFETY: valid pointers.
    ok(unsafe { dlshare_tensor_zeros(F32, 1, shape.as_ptr(), CUDA0, &mut h) });
    let p = data_of(h).cast::<f32>();
    println!("reading device address {p:p} on the host");
    // SAFETY: deliberately wrong: `p` is device memory. The simulator maps it without access,
    // so this read must kill the process (SIGSEGV) instead of returning a value.
    let x = unsafe { std::ptr::read_volatile(p) };
    println!("read {x} from device memory: the simulator did not catch the host read");
}

#[test]
fn a_host_read_of_device_memory_crashes() {
    let Some(sim) = Sim::get("a_host_read_of_device_memory_crashes") else {
        return;
    };
    let out = child("child_reads_device_memory_on_the_host", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("reading device address"), "{stdout}");
    assert_eq!(
        out.status.signal(),
        Some(11),
        "expected SIGSEGV, got {:?}:\n{stdout}",
        out.status
    );
    // control: pinned host memory is readable (the crash is the device mapping, not the test)
    let _g = lock();
    let shape = [1024i64];
    let mut h = SENTINEL;
    // SAFETY: valid pointers.
    ok(unsafe { dlshare_tensor_zeros(F32, 1, shape.as_ptr(), CUDA_HOST0, &mut h) });
    // SAFETY: pinned host memory of 1024 float32, zeroed.
    assert_eq!(
        unsafe { std::ptr::read_volatile(data_of(h).cast::<f32>()) },
        0.0
    );
    release(h);
    let _ = sim;
}

// ---- asynchronous streams ---------------------------------------------------------------------

type StreamCreate = unsafe extern "C" fn(*mut *mut c_void, u32) -> c_int;
type StreamDestroy = unsafe extern "C" fn(*mut c_void) -> c_int;
type Sync1 = unsafe extern "C" fn(*mut c_void) -> c_int;
type DtoH = unsafe extern "C" fn(*mut c_void, u64, usize, *mut c_void) -> c_int;
type Retain = unsafe extern "C" fn(*mut *mut c_void, c_int) -> c_int;
type Release = unsafe extern "C" fn(c_int) -> c_int;
type Push = unsafe extern "C" fn(*mut c_void) -> c_int;
type Pop = unsafe extern "C" fn(*mut *mut c_void) -> c_int;

/// A consumer of our own, as a library on another stream would be: its own stream in the
/// primary context of device 0, and a pinned host buffer its copies land in.
struct Consumer<'a> {
    sim: &'a Sim,
    stream: *mut c_void,
}

impl<'a> Consumer<'a> {
    fn new(sim: &'a Sim) -> Consumer<'a> {
        let mut ctx = std::ptr::null_mut();
        let mut stream = std::ptr::null_mut();
        // SAFETY: driver calls with valid outputs; the context is pushed around the creation.
        unsafe {
            assert_eq!(
                sim.func::<Retain>(c"cuDevicePrimaryCtxRetain")(&mut ctx, 0),
                0
            );
            assert_eq!(sim.func::<Push>(c"cuCtxPushCurrent_v2")(ctx), 0);
            assert_eq!(
                sim.func::<StreamCreate>(c"cuStreamCreate")(&mut stream, 1),
                0
            );
            let mut popped = std::ptr::null_mut();
            assert_eq!(sim.func::<Pop>(c"cuCtxPopCurrent_v2")(&mut popped), 0);
        }
        Consumer { sim, stream }
    }

    /// Queues a copy of device memory into pinned host memory on the consumer's stream.
    fn read(&self, device: *const u8, pinned: *mut u8, n: usize) {
        // SAFETY: a device range and a pinned buffer of `n` bytes, in a pushed context.
        unsafe {
            let mut ctx = std::ptr::null_mut();
            assert_eq!(
                self.sim.func::<Retain>(c"cuDevicePrimaryCtxRetain")(&mut ctx, 0),
                0
            );
            assert_eq!(self.sim.func::<Push>(c"cuCtxPushCurrent_v2")(ctx), 0);
            let r = self.sim.func::<DtoH>(c"cuMemcpyDtoHAsync_v2")(
                pinned.cast(),
                device as u64,
                n,
                self.stream,
            );
            assert_eq!(r, 0);
            let mut popped = std::ptr::null_mut();
            assert_eq!(self.sim.func::<Pop>(c"cuCtxPopCurrent_v2")(&mut popped), 0);
            assert_eq!(
                self.sim.func::<Release>(c"cuDevicePrimaryCtxRelease_v2")(0),
                0
            );
        }
    }

    fn synchronize(&self) {
        // SAFETY: a live stream.
        assert_eq!(
            unsafe { self.sim.func::<Sync1>(c"cuStreamSynchronize")(self.stream) },
            0
        );
    }
}

impl Drop for Consumer<'_> {
    fn drop(&mut self) {
        // SAFETY: the stream made in `new`, destroyed once; the retain of `new` released.
        unsafe {
            self.sim.func::<StreamDestroy>(c"cuStreamDestroy_v2")(self.stream);
            self.sim.func::<Release>(c"cuDevicePrimaryCtxRelease_v2")(0);
        }
    }
}

/// Releases `stream`'s gate in half a second, from another thread (the test queues its work
/// before then).
fn open_later(sim: &Sim, stream: *mut c_void) -> std::thread::JoinHandle<()> {
    let gate = sim.gate;
    let stream = stream as usize;
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(500));
        // SAFETY: a live stream handle.
        unsafe { gate(stream as *mut c_void, 0) };
    })
}

#[test]
fn the_stream_handoff_orders_a_consumer_after_our_copy() {
    let Some(sim) = Sim::get("the_stream_handoff_orders_a_consumer_after_our_copy") else {
        return;
    };
    let _g = lock_exclusive();
    let before = sim.snapshot();
    {
        let n = 100_000;
        let values = to_bytes(&floats(n, 5.0));
        let buf = Buf::from_bytes(&values);
        let shape = [n as i64];
        let consumer = Consumer::new(&sim);
        let producer_owner = Consumer::new(&sim);
        let producer = producer_owner.stream; // the stream our copy is ordered on
        let mut pinned = SENTINEL;
        // SAFETY: valid pointers.
        ok(unsafe { dlshare_tensor_empty(F32, 1, shape.as_ptr(), CUDA_HOST0, &mut pinned) });
        let dst = data_of(pinned);
        for handoff in [true, false] {
            // the producer's stream is held: our copy on it cannot run yet
            // (opened from another thread in a moment: a copy that must finish before it
            // returns, as with DLSHARE_CUDA_PAGEABLE=register, waits until then)
            sim.gate(producer, true);
            let opener = open_later(&sim, producer);
            let (s, d, _) = from_view(
                &host_view(&buf, F32, &shape),
                &on_stream(to_device(opts(COPY), CUDA0), producer),
            );
            ok(s);
            if handoff {
                // what __dlpack__(stream=consumer) does
                ok(dlshare_cuda_stream_wait(0, consumer.stream as i64));
            }
            consumer.read(data_of(d), dst, n * 4);
            consumer.synchronize();
            opener.join().unwrap();
            let seen = contents(pinned);
            if handoff {
                assert!(seen == values, "the consumer read before our copy finished");
            } else {
                // control: without the wait the consumer reads the device memory as it was
                // before the copy (the simulator fills fresh memory with 0xCB)
                assert!(
                    seen != values,
                    "the unsynchronised read saw the finished copy"
                );
                assert!(seen.iter().all(|&b| b == 0xCB), "stale data expected");
            }
            ok(dlshare_cuda_synchronize(0));
            assert!(download(d) == values);
            release(d);
        }
        release(pinned);
    }
    ok(dlshare_cuda_synchronize(0));
    let after = sim.snapshot();
    assert_eq!(after, before, "the handoff leaked");
}

#[test]
fn staging_buffers_are_not_reused_before_their_transfer() {
    let Some(sim) = Sim::get("staging_buffers_are_not_reused_before_their_transfer") else {
        return;
    };
    let _g = lock_exclusive();
    // a copy of ten staging buffers on a held stream: dlshare must wait for each buffer's
    // transfer before packing the next piece into it, or the device gets later pieces twice
    let n = 10 * chunk_bytes() / 4;
    let values = to_bytes(&floats(n, 6.0));
    let buf = Buf::from_bytes(&values);
    let shape = [n as i64];
    let consumer = Consumer::new(&sim);
    sim.gate(consumer.stream, true);
    let opener = open_later(&sim, consumer.stream);
    let (s, d, _) = from_view(
        &host_view(&buf, F32, &shape),
        &on_stream(to_device(opts(COPY), CUDA0), consumer.stream),
    );
    ok(s);
    opener.join().unwrap();
    ok(dlshare_cuda_synchronize(0));
    assert!(
        download(d) == values,
        "a staging buffer was overwritten in flight"
    );
    release(d);
}

// ---- two devices ------------------------------------------------------------------------------

#[test]
fn copies_between_two_devices() {
    let Some(sim) = Sim::get("copies_between_two_devices") else {
        return;
    };
    let mut count = 0;
    // SAFETY: writable output.
    ok(unsafe { dlshare_cuda_device_count(&mut count) });
    if count < 2 {
        println!("copies_between_two_devices: skipped: one device (set DLSHARE_SIM_DEVICES=2)");
        return;
    }
    let _g = lock_exclusive();
    // the devices' contexts, streams and staging buffers are made on first use: before the
    // baseline
    ok(create_on(CUDA0));
    ok(create_on(CUDA1));
    let before = sim.snapshot();
    let bytes1 = sim.counter("device_bytes:1");
    let values: Vec<f64> = (0..30_000).map(|i| i as f64 / 3.0).collect();
    let buf = Buf::from_bytes(&to_bytes(&values));
    let shape = [100i64, 300];
    let (s, d0, _) = from_view(&host_view(&buf, F64, &shape), &to_device(opts(COPY), CUDA0));
    ok(s);
    for stream in [std::ptr::null_mut(), std::ptr::without_provenance_mut(1)] {
        // cuda:0 -> cuda:1 (peer copy), back, and with a cast and a transposition
        let (s, d1, _) = convert(d0, &on_stream(to_device(opts(COPY), CUDA1), stream));
        ok(s);
        assert_eq!(info(d1).0.device, CUDA1);
        assert!(sim.counter("device_bytes:1") >= bytes1 + 240_000);
        ok(dlshare_cuda_synchronize(1));
        assert!(download(d1) == to_bytes(&values), "cuda:0 -> cuda:1");
        let (s, back, _) = convert(d1, &to_device(opts_dtype(COPY, F32), CUDA0));
        ok(s);
        let as_f32: Vec<f32> = values.iter().map(|&v| v as f32).collect();
        assert!(
            download(back) == to_bytes(&as_f32),
            "cuda:1 -> cuda:0 as float32"
        );
        let mut t = SENTINEL;
        let (tshape, tstrides) = ([300i64, 100], [1i64, 300]);
        // SAFETY: valid pointers.
        ok(unsafe {
            dlshare::ffi::columns::dlshare_tensor_view(
                d1,
                2,
                tshape.as_ptr(),
                tstrides.as_ptr(),
                0,
                &mut t,
            )
        });
        let (s, t0, _) = convert(t, &to_device(opts(COPY), CUDA0));
        ok(s);
        let mut want = Vec::new();
        for j in 0..300 {
            for i in 0..100 {
                want.push(values[i * 300 + j]);
            }
        }
        assert!(
            download(t0) == to_bytes(&want),
            "transposed cuda:1 -> cuda:0"
        );
        for h in [d1, back, t, t0] {
            release(h);
        }
    }
    release(d0);
    ok(dlshare_cuda_synchronize(0));
    ok(dlshare_cuda_synchronize(1));
    assert_eq!(sim.counter("device_bytes:1"), bytes1, "cuda:1 memory back");
    assert_eq!(sim.snapshot(), before);
}
