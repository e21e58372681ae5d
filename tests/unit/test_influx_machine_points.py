"""InfluxDB points for the whole machine: Telegraf's measurements, exact lines."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pistatsd.influx.lineprotocol import is_valid_line
from pistatsd.influx.machine_points import machine_points
from pistatsd.influx.points import DaemonPoints, system_point
from pistatsd.web.traffic import RequestTally
from tests.influxd import capture_all_logs
from tests.machine_snapshots import ALL, OLD, PC, PI, first_sample, with_odd_mount
from tests.unit.test_influx_points import FakeSampler

PI_LINES = [
    'net,host=pi,interface=br-"lan\\1 bytes_recv=0i,bytes_sent=0i,err_in=0i,err_out=0i,'
    "drop_in=0i,drop_out=0i 1000",
    "net,host=pi,interface=eth0 bytes_recv=123000000i,bytes_sent=7000000i,err_in=0i,err_out=0i,"
    "drop_in=3i,drop_out=0i,speed=1000i,bytes_recv_per_s=1536000.0,bytes_sent_per_s=20000.0 1000",
    "net,host=pi,interface=wlan0 bytes_recv=456789i,bytes_sent=340032i,err_in=1i,err_out=0i,"
    "drop_in=0i,drop_out=2i,bytes_recv_per_s=0.0,bytes_sent_per_s=480.0 1000",
    "disk,host=pi,path=/,device=mmcblk0p2,fstype=ext4,mode=rw total=31138512896i,"
    "free=2147483648i,used=28991029248i,used_percent=93.1,inodes_used_percent=12.0 1000",
    "disk,host=pi,path=/boot/firmware,device=mmcblk0p1,fstype=vfat,mode=ro total=536870912i,"
    "free=469762048i,used=67108864i,used_percent=12.5 1000",
    "disk,host=pi,path=/media/My\\ Photos,device=sda1,fstype=exfat,mode=rw total=1073741824000i,"
    "free=644245094400i,used=429496729600i,used_percent=40.0,inodes_used_percent=0.0 1000",
    "diskio,host=pi,name=mmcblk0 write_bytes=52613349376i,read_bytes_per_s=4096.0,"
    "write_bytes_per_s=2621440.0,reads_per_s=1.0,writes_per_s=20.0,busy_percent=7.5,"
    'life_time_used_percent_a=10i,life_time_used_percent_b=20i,pre_eol="normal" 1000',
    "diskio,host=pi,name=sda write_bytes=1048576i,read_bytes_per_s=0.0,write_bytes_per_s=0.0,"
    "reads_per_s=0.0,writes_per_s=0.0,busy_percent=0.0 1000",
    "processes,host=pi total=182i,running=2i,zombies=1i 1000",
    "temp,host=pi,sensor=cpu_thermal temp=48.3 1000",
    "temp,host=pi,sensor=rp1_adc temp=41.0 1000",
    "fan,host=pi,chip=pwmfan,sensor=fan1 rpm=3121.0 1000",
    "throttled,host=pi under_voltage=true,under_voltage_since_boot=true,freq_capped=false,"
    "freq_capped_since_boot=true,throttled=true,throttled_since_boot=true,soft_temp_limit=false,"
    "soft_temp_limit_since_boot=false,core_volts=0.8625,input_volts=4.87 1000",
]


def lines(snapshot, host: str = "pi") -> list[str]:
    return [p.line() for p in machine_points(snapshot, host, 1000)]


class MachinePointsTests(SynchronousTestCase):
    def test_a_pi_in_steady_state(self) -> None:
        """Every measurement, exactly; the NFS mount that timed out writes no disk point."""
        self.assertEqual(lines(PI), PI_LINES)

    def test_first_sample_leaves_out_the_rates(self) -> None:
        got = lines(first_sample())
        self.assertIn(
            "net,host=pi,interface=eth0 bytes_recv=123000000i,bytes_sent=7000000i,err_in=0i,"
            "err_out=0i,drop_in=3i,drop_out=0i,speed=1000i 1000",
            got,
        )
        self.assertIn(
            "diskio,host=pi,name=mmcblk0 write_bytes=52613349376i,life_time_used_percent_a=10i,"
            'life_time_used_percent_b=20i,pre_eol="normal" 1000',
            got,
        )
        self.assertIn("diskio,host=pi,name=sda write_bytes=1048576i 1000", got)
        self.assertFalse([line for line in got if "_per_s=" in line])

    def test_a_pc_without_pi_firmware(self) -> None:
        """Empty maps and lists write nothing; no C{throttled}, no C{temp} without sensors."""
        self.assertEqual(
            lines(PC, "lab"), ["processes,host=lab total=90i,running=1i,zombies=0i 1000"]
        )

    def test_an_older_snapshot_or_nothing_at_all(self) -> None:
        self.assertEqual(lines(OLD, "old"), ["temp,host=old,sensor=cpu_thermal temp=40.0 1000"])
        self.assertEqual(lines(ALL["bare"]), [])
        self.assertEqual(lines({}), [])

    def test_field_types_never_change(self) -> None:
        """InfluxDB refuses a batch whose field type changed: floats stay floats, counts ints."""
        snap = first_sample()
        snap["net"]["interfaces"]["eth0"].update(rx_bytes=5.0, rx_bytes_per_s=3)
        snap["processes"]["total"] = 90.0
        snap["fans"] = {"pwmfan/fan1": 3000.0, "cooling/fan2": True}
        got = lines(snap)
        self.assertIn("bytes_recv=5i", next(line for line in got if "interface=eth0" in line))
        self.assertIn(
            "bytes_recv_per_s=3.0", next(line for line in got if "interface=eth0" in line)
        )
        self.assertIn("processes,host=pi total=90i,running=2i,zombies=1i 1000", got)
        self.assertEqual(
            [line for line in got if line.startswith("fan,")],
            ["fan,host=pi,chip=pwmfan,sensor=fan1 rpm=3000.0 1000"],
        )

    def test_names_are_escaped_and_always_encode(self) -> None:
        got = lines(with_odd_mount())
        [odd] = [line for line in got if "sdb1" in line]
        self.assertTrue(odd.startswith("disk,host=pi,path=/mnt/caf\\udce9,device=sdb1,"), odd)
        for line in got:
            line.encode("utf-8")
            self.assertTrue(is_valid_line(line), line)

    def test_system_gets_the_cpu_clock(self) -> None:
        point = system_point(PI, "pi", 1000)
        assert point is not None
        self.assertEqual(
            point.line(),
            "system,host=pi cpu=12.5,memory_percent=25.0,temperature=48.3,load1=0.42,"
            "uptime=93784.2,cpu_freq_mhz=1800.0 1000",
        )

    def test_the_report_carries_them(self) -> None:
        """The reporter's points: requests, system, then the machine, tagged with the host."""
        points = DaemonPoints(tally=RequestTally(), sampler=FakeSampler(PI), host="ignored")(1000)
        measurements = [p.measurement for p in points]
        self.assertEqual(measurements[:2], ["requests", "system"])
        self.assertEqual([p.line() for p in points[2:]], PI_LINES)

    def test_a_broken_machine_part_costs_only_itself(self) -> None:
        """A snapshot the machine points cannot read: the rest is written, logged once."""
        events = capture_all_logs(self)

        class Odd(dict):
            broken = True

            def get(self, key, default=None):
                if key == "net" and self.broken:
                    raise ValueError("broken")
                return super().get(key, default)

        snapshot = Odd(PI)
        source = DaemonPoints(tally=RequestTally(), sampler=FakeSampler(snapshot))
        self.assertEqual([p.measurement for p in source(1000)], ["requests", "system"])
        source(1001)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1, "logged once per episode")
        snapshot.broken = False
        self.assertEqual([p.line() for p in source(1000)][2:], PI_LINES)
        self.assertTrue(any("can be collected again" in str(e.get("log_format")) for e in events))
