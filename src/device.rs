//! Devices as DLPack names them (`DLDeviceType` + id).

use crate::error::{Error, Result};

/// DLPack device type codes (`DLDeviceType`, spec 1.3).
pub mod device_type {
    pub const CPU: i32 = 1;
    pub const CUDA: i32 = 2;
    pub const CUDA_HOST: i32 = 3;
    pub const OPENCL: i32 = 4;
    pub const VULKAN: i32 = 7;
    pub const METAL: i32 = 8;
    pub const VPI: i32 = 9;
    pub const ROCM: i32 = 10;
    pub const ROCM_HOST: i32 = 11;
    pub const EXT_DEV: i32 = 12;
    pub const CUDA_MANAGED: i32 = 13;
    pub const ONEAPI: i32 = 14;
    pub const WEBGPU: i32 = 15;
    pub const HEXAGON: i32 = 16;
    pub const MAIA: i32 = 17;
    pub const TRN: i32 = 18;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Device {
    pub device_type: i32,
    pub device_id: i32,
}

impl Device {
    pub const CPU: Device = Device {
        device_type: device_type::CPU,
        device_id: 0,
    };

    pub fn cuda(id: i32) -> Device {
        Device {
            device_type: device_type::CUDA,
            device_id: id,
        }
    }

    /// Checks that the device type is one DLPack 1.3 defines and the id is not negative.
    pub fn validate(self) -> Result<Device> {
        use device_type::*;
        let known = matches!(
            self.device_type,
            CPU | CUDA
                | CUDA_HOST
                | OPENCL
                | VULKAN
                | METAL
                | VPI
                | ROCM
                | ROCM_HOST
                | EXT_DEV
                | CUDA_MANAGED
                | ONEAPI
                | WEBGPU
                | HEXAGON
                | MAIA
                | TRN
        );
        if !known {
            return Err(Error::UnsupportedDevice(format!(
                "unknown DLPack device type {} (DLPack 1.3 defines 1-4 and 7-18)",
                self.device_type
            )));
        }
        if self.device_id < 0 {
            return Err(Error::InvalidArgument(format!(
                "device id {} is negative; device ids count from 0",
                self.device_id
            )));
        }
        Ok(self)
    }

    /// Whether the CPU can read and write this memory directly (CPU, pinned and managed memory).
    pub fn is_host_accessible(self) -> bool {
        matches!(
            self.device_type,
            device_type::CPU
                | device_type::CUDA_HOST
                | device_type::ROCM_HOST
                | device_type::CUDA_MANAGED
        )
    }

    /// A readable name: `cpu`, `cuda:0`, `cuda_host:0`, `device_type_9:1`.
    pub fn name(self) -> String {
        use device_type::*;
        let base = match self.device_type {
            CPU => return "cpu".into(),
            CUDA => "cuda",
            CUDA_HOST => "cuda_host",
            OPENCL => "opencl",
            VULKAN => "vulkan",
            METAL => "metal",
            VPI => "vpi",
            ROCM => "rocm",
            ROCM_HOST => "rocm_host",
            EXT_DEV => "ext_dev",
            CUDA_MANAGED => "cuda_managed",
            ONEAPI => "oneapi",
            WEBGPU => "webgpu",
            HEXAGON => "hexagon",
            MAIA => "maia",
            TRN => "trn",
            t => return format!("device_type_{t}:{}", self.device_id),
        };
        format!("{base}:{}", self.device_id)
    }
}

impl Device {
    /// Parses `cpu`, `cuda`, `cuda:1`, `cuda_host:0` ... (the names `name()` gives; a missing id
    /// means 0).
    pub fn from_name(name: &str) -> Result<Device> {
        use device_type::*;
        let (base, id) = match name.split_once(':') {
            Some((base, id)) => (
                base,
                id.parse::<i32>().map_err(|_| {
                    Error::InvalidArgument(format!(
                        "device '{name}': the id after ':' must be a number, as in 'cuda:0'"
                    ))
                })?,
            ),
            None => (name, 0),
        };
        let device_type = match base {
            "cpu" => CPU,
            "cuda" => CUDA,
            "cuda_host" => CUDA_HOST,
            "opencl" => OPENCL,
            "vulkan" => VULKAN,
            "metal" => METAL,
            "vpi" => VPI,
            "rocm" => ROCM,
            "rocm_host" => ROCM_HOST,
            "ext_dev" => EXT_DEV,
            "cuda_managed" => CUDA_MANAGED,
            "oneapi" => ONEAPI,
            "webgpu" => WEBGPU,
            "hexagon" => HEXAGON,
            "maia" => MAIA,
            "trn" => TRN,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "unknown device '{name}'; use 'cpu' or 'cuda:N' (or another DLPack device \
                     name such as 'cuda_host:0')"
                )));
            }
        };
        Device {
            device_type,
            device_id: id,
        }
        .validate()
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}
