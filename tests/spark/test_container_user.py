"""spark-submit in a container run as a uid its image lacks (a remote docker run as the SSH
user's uid; a local one as a non-root client's): the created container's /etc/passwd gets a line
for it before it starts (backends/spark/container.py). Found in issue 9's walkthrough: iris on a
remotedocker PySpark runconfig stopped at "basedir must be absolute: ?/.ivy2.5.2/local", then at
"Invalid UID, could not determine effective user". Against the local daemon, no JVM."""

from __future__ import annotations

import asyncio

from backends.docker.api import DockerAPI
from backends.spark.container import name_the_user, with_user
from tests.docker.conftest import BASE_IMAGE, docker
from tests.docker.conftest import docker_ready as docker_ready  # the fixture, shared


def test_passwd_gets_a_line_only_for_an_unknown_uid() -> None:
    image = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/nonexistent:/bin/false\n"
    line = "u12345:x:12345:23456:labdeck run:/tmp:/bin/sh\n"
    assert with_user(image, "12345:23456") == image + line
    assert with_user(image, "65534:65534") is None  # the image knows it
    assert with_user(image, "0:0") is None and with_user(image, None) is None
    assert with_user(image, "someone") is None  # a name: the image's own business


def test_a_containers_unknown_uid_gets_a_name_and_a_home(docker_ready: None) -> None:
    async def run() -> str:
        api = DockerAPI("unix:///var/run/docker.sock")
        cid = await api.create({"Image": BASE_IMAGE, "User": "12345:12345",
                                "Cmd": ["sh", "-c", "id -un; python3 -c 'import os, pwd; "
                                        "print(pwd.getpwuid(os.getuid()).pw_dir)'"],
                                "Labels": {"org.labdeck.test": "spark-container-user"}})
        try:
            await name_the_user(api, cid, "12345:12345")
            await api.start(cid)
            await api.wait(cid)
            return docker("logs", cid).stdout
        finally:
            docker("rm", "-f", cid, check=False)
            await api.close()

    assert asyncio.run(run()).split() == ["u12345", "/tmp"]
