//! Keeps GPU probing quiet on machines without a Wayland display.
//!
//! wgpu's Vulkan backend enables `VK_KHR_wayland_surface` wherever the driver
//! offers it. Mesa's implicit `VK_LAYER_MESA_device_select` layer sees that
//! extension and, while enumerating physical devices, calls
//! `wl_display_connect` to find the GPU driving the compositor; without a
//! compositor (and `XDG_RUNTIME_DIR`) libwayland-client prints "error:
//! XDG_RUNTIME_DIR is invalid or not set in the environment." straight to
//! stderr, once per enumeration. It is not a log record, so no filter can
//! stop it. thermoroute only computes and never presents, so where there is
//! no Wayland display the layer has nothing to find: turn it off with its
//! documented switch, `NODEVICE_SELECT=1`, unless the user chose a device
//! through it (`MESA_VK_DEVICE_SELECT`, `DRI_PRIME`) or set the switch.

/// Sets `NODEVICE_SELECT=1` when there is no Wayland display (Linux).
///
/// Call first thing in `main`, before any thread exists.
pub fn no_wayland_probe_without_wayland() {
    if !cfg!(target_os = "linux") {
        return;
    }
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    let wayland = set("WAYLAND_DISPLAY") || set("WAYLAND_SOCKET");
    let chosen = set("NODEVICE_SELECT") || set("MESA_VK_DEVICE_SELECT") || set("DRI_PRIME");
    if wayland || chosen {
        return;
    }
    set_before_threads("NODEVICE_SELECT", "1");
}

/// Points `XDG_RUNTIME_DIR` at a private, empty directory (mode 0700) when
/// it is unset or not a directory and there is no Wayland display.
///
/// `NODEVICE_SELECT` quiets Mesa's layer only; any other code that calls
/// `wl_display_connect` (a layer the user selected a device through with
/// `DRI_PRIME`, another vendor's EGL or Vulkan driver) would still make
/// libwayland print "XDG_RUNTIME_DIR is invalid". With a valid directory
/// and no socket in it, the connection fails without a word. The directory
/// lives as long as the returned guard: hold it until `main` returns.
///
/// Call first thing in `main`, before any thread exists.
pub fn private_runtime_dir_without_wayland() -> Option<tempfile::TempDir> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    if set("WAYLAND_DISPLAY") || set("WAYLAND_SOCKET") {
        return None;
    }
    let valid = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .is_some_and(|v| std::path::Path::new(&v).is_dir());
    if valid {
        return None;
    }
    // tempfile makes directories 0700, as the XDG spec asks of this one.
    let dir = tempfile::Builder::new()
        .prefix("thermoroute-runtime-")
        .tempdir()
        .ok()?;
    set_before_threads("XDG_RUNTIME_DIR", &dir.path().to_string_lossy());
    Some(dir)
}

#[allow(unsafe_code)]
fn set_before_threads(name: &str, value: &str) {
    // SAFETY: called from `main` before the program starts any thread, so
    // no other thread can read the environment concurrently.
    unsafe { std::env::set_var(name, value) };
}
