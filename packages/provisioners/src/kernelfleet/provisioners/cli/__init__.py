"""``jupyter ssh-spec`` / ``docker-spec`` / ``k8s-spec``: write kernelspecs that use our provisioners."""
