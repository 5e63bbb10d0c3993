"""The documented command: ``python scripts/reference_robotics_deployment.py --device cpu --epochs 2 --n-samples 6000``.

A thin launcher for :mod:`zpml_runtime.reference_robotics_deployment` (same flags;
``--help`` lists them). Artifacts go to ``results/reference_deploy_robotics/``.
"""

from zpml_runtime.reference_robotics_deployment import main

if __name__ == "__main__":
    raise SystemExit(main())
