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
        DeviceKind::Cuda => Ok(burn::backend::cuda::CudaDevice { index: 0 }),
        DeviceKind::Cpu => Err(
            "this binary was built with the CUDA backend; build without `--features cuda` for CPU"
                .into(),
        ),
    }
}

/// The selected device (the default device when [`select`] was not called).
pub fn device() -> Device {
    DEVICE.get().cloned().unwrap_or_default()
}
