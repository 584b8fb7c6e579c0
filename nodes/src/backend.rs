//! The one place the compute backend and device are chosen.
//!
//! CPU builds use Burn's Flex backend (multi-threaded with rayon); `--features cuda` switches the
//! backend to CUDA. Model code stays generic over `B: Backend`; nodes use [`B`].

use std::sync::OnceLock;

/// Backend used by the nodes.
#[cfg(not(feature = "cuda"))]
pub type B = burn::backend::Flex;
/// Backend used by the nodes.
#[cfg(feature = "cuda")]
pub type B = burn::backend::Cuda;

/// Autodiff backend for training graphs.
pub type TrainB = burn::backend::Autodiff<B>;

/// Device of [`B`].
pub type Device = burn::prelude::Device<B>;

/// Which device the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// The CPU (Flex backend).
    Cpu,
    /// CUDA device 0.
    Cuda,
}

impl DeviceKind {
    /// The device this build computes on: CUDA in `--features cuda` builds, else the CPU.
    pub const fn native() -> Self {
        if cfg!(feature = "cuda") {
            DeviceKind::Cuda
        } else {
            DeviceKind::Cpu
        }
    }

    /// The name `--device` takes.
    pub const fn name(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Cuda => "cuda",
        }
    }
}

impl std::str::FromStr for DeviceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(DeviceKind::Cpu),
            "cuda" => Ok(DeviceKind::Cuda),
            other => Err(format!("unknown device `{other}` (cpu or cuda)")),
        }
    }
}

static DEVICE: OnceLock<Device> = OnceLock::new();

/// Selects the device for this process; call before running any graph. Fails when the binary was
/// built without the requested backend.
pub fn select(kind: DeviceKind) -> Result<(), String> {
    let dev = make_device(kind)?;
    let _ = DEVICE.set(dev);
    Ok(())
}

#[cfg(not(feature = "cuda"))]
fn make_device(kind: DeviceKind) -> Result<Device, String> {
    match kind {
        DeviceKind::Cpu => Ok(Default::default()),
        DeviceKind::Cuda => {
            Err("this binary was built without CUDA; rebuild with `--features cuda`".into())
        }
    }
}

#[cfg(feature = "cuda")]
fn make_device(kind: DeviceKind) -> Result<Device, String> {
    match kind {
        DeviceKind::Cuda => {
            cuda_ready()?;
            Ok(burn::backend::cuda::CudaDevice { index: 0 })
        }
        DeviceKind::Cpu => Err(
            "this binary was built with the CUDA backend; build without `--features cuda` for CPU"
                .into(),
        ),
    }
}

/// Checks that the CUDA driver and NVRTC (which compiles the backend's kernels at run time) load
/// and that a device is present, so that a machine without them gets an error naming what is
/// missing rather than a panic inside the backend.
#[cfg(feature = "cuda")]
fn cuda_ready() -> Result<(), String> {
    // SAFETY: each call only tries to open the library under its usual names.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(
            "`--device cuda`: the CUDA driver library (libcuda.so) was not found; \
                    install the NVIDIA driver, or add the folder holding libcuda.so to \
                    LD_LIBRARY_PATH"
                .into(),
        );
    }
    // SAFETY: as above.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(
            "`--device cuda`: NVRTC (libnvrtc.so), which compiles the GPU kernels at \
                    run time, was not found; add the CUDA toolkit's library folder (e.g. \
                    /usr/local/cuda/lib64) to LD_LIBRARY_PATH"
                .into(),
        );
    }
    cudarc::driver::result::init()
        .map_err(|e| format!("`--device cuda`: the CUDA driver did not start: {e}"))?;
    let count = cudarc::driver::result::device::get_count()
        .map_err(|e| format!("`--device cuda`: cannot count CUDA devices: {e}"))?;
    if count == 0 {
        return Err("`--device cuda`: the CUDA driver sees no GPU".into());
    }
    Ok(())
}

/// The selected device (the default device when [`select`] was not called).
pub fn device() -> Device {
    DEVICE.get().cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_round_trip_and_the_native_device_is_selectable() {
        for kind in [DeviceKind::Cpu, DeviceKind::Cuda] {
            assert_eq!(kind.name().parse::<DeviceKind>(), Ok(kind));
        }
        assert!("gpu".parse::<DeviceKind>().unwrap_err().contains("`gpu`"));
        let native = DeviceKind::native();
        assert_eq!(native == DeviceKind::Cuda, cfg!(feature = "cuda"));
        if native == DeviceKind::Cpu {
            assert!(select(native).is_ok());
            let err = select(DeviceKind::Cuda).unwrap_err();
            assert!(err.contains("--features cuda"), "{err}");
        }
    }
}
