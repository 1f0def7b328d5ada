"""Kernel Fleet: a Gateway-Provisioners-style `launch_ipykernel.py` entry point.

`jupyter image-bootstrap install --languages python` copies this file to
`kernel-launchers/python/`, so kernelspecs written for GP images that run this path by file name
keep working; it runs the `kernelfleet.launcher` module with the same arguments.
"""

import runpy

if __name__ == "__main__":
    runpy.run_module("kernelfleet.launcher", run_name="__main__", alter_sys=True)
