# boot.py: kept minimal; main.py does the work (provisioning, then the application loop).
import sys

if "/lib" not in sys.path:
    sys.path.append("/lib")
