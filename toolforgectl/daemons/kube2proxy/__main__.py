"""`python -m toolforgectl.daemons.kube2proxy`: the same as the `kube2proxy` console script."""

from toolforgectl.daemons.kube2proxy.main import main

main()
