#!/usr/bin/env bash
# Fresh-machine set-up for stare-robot on Debian bookworm (x86_64, CPU).
#
#   scripts/setup.sh            # system packages + .venv with the project and all extras
#
# Idempotent: a second run checks a stamp and returns in about a second.
# Installs: Mesa >= 24.3 lavapipe (Vulkan on the CPU, needed by ManiSkill3/SAPIEN) from
# bookworm-backports, libusb (pyrealsense2), and a Python 3.11 virtualenv in .venv.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${STARE_VENV:-$root/.venv}"
python="${PYTHON:-python3.11}"
stamp="$venv/.stare-setup-stamp"

# The stamp records what the venv was built from; a change to either rebuilds it.
want_stamp="$(cat "$root/pyproject.toml" "$root/scripts/setup.sh" | sha256sum | cut -d' ' -f1)"

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

mesa_ok() {
  # Mesa's lavapipe >= 24.3 has VK_KHR_external_semaphore_fd, which SAPIEN needs.
  local v
  v="$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)"
  [ -n "$v" ] && dpkg --compare-versions "$v" ge 24.3 && dpkg -s libvulkan1 >/dev/null 2>&1
}

system_packages() {
  if mesa_ok && dpkg -s libusb-1.0-0 >/dev/null 2>&1; then
    echo "[setup] system packages: present"
    return
  fi
  if [ ! -f /etc/os-release ] || ! grep -q bookworm /etc/os-release; then
    echo "[setup] warning: not Debian bookworm; install Mesa >= 24.3 Vulkan drivers and libusb-1.0 yourself" >&2
    return
  fi
  local list=/etc/apt/sources.list.d/bookworm-backports.sources
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "[setup] adding bookworm-backports to $list"
    sudo_if_needed tee "$list" >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libusb-1.0-0
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports \
    mesa-vulkan-drivers libvulkan1
}

# pip, minus the warnings this machine's pip.conf emits for absent local index folders; pip's own
# exit status is kept.
pip_quiet() {
  "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

python_env() {
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want_stamp" ]; then
    echo "[setup] $venv: up to date"
    return
  fi
  command -v "$python" >/dev/null || python=python3
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  local pip=(pip_quiet "$venv/bin/python" -m pip install -q)
  echo "[setup] building $venv (a few minutes the first time)"
  # torch first, pinned: an unpinned torch would pull a multi-GB CUDA build.
  "${pip[@]}" "torch==2.13.0"
  "${pip[@]}" -e "$root[sim,ros,realsense,dev]"
  # The ROS 2 nodes (ament_python package) go into the same venv when the ros extra is there.
  if "$venv/bin/python" -c "import rclpy" >/dev/null 2>&1; then
    "${pip[@]}" -e "$root/ros2_ws/src/stare_robot_ros"
  fi
  echo "$want_stamp" > "$stamp"
  echo "[setup] $venv: installed"
}

system_packages
python_env
