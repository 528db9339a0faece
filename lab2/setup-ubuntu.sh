#!/usr/bin/env bash
# Set up Jenkins on a plain Ubuntu 22.04/24.04 VM (run as root), then create the job from
# lab2/jobs with Jenkins Job Builder. Needs internet access (pkg.jenkins.io, PyPI).
#   sudo bash lab2/setup-ubuntu.sh
# Then: open http://<vm>:8080, unlock with the printed password, install the suggested plugins
# plus those in lab2/jenkins/plugins.txt, create an API token, and run the last step by hand:
#   jenkins-jobs --conf jenkins_jobs.ini update lab2/jobs
set -euo pipefail

echo "== Java, Python (pipeline.sh needs python3-venv) and git"
apt-get update
apt-get install -y fontconfig openjdk-17-jre python3 python3-venv python3-pip git curl

echo "== Jenkins LTS from the Jenkins Debian repository"
install -d -m 0755 /etc/apt/keyrings
curl -fsSL https://pkg.jenkins.io/debian-stable/jenkins.io-2023.key \
  -o /etc/apt/keyrings/jenkins-keyring.asc
echo "deb [signed-by=/etc/apt/keyrings/jenkins-keyring.asc] https://pkg.jenkins.io/debian-stable binary/" \
  > /etc/apt/sources.list.d/jenkins.list
apt-get update
apt-get install -y jenkins
systemctl enable --now jenkins

echo "== Jenkins Job Builder (to create the job from lab2/jobs)"
python3 -m venv /opt/jjb
/opt/jjb/bin/pip install "jenkins-job-builder==6.5.0" "setuptools<81"
ln -sf /opt/jjb/bin/jenkins-jobs /usr/local/bin/jenkins-jobs

cat <<'MSG'
Jenkins is running on port 8080. Initial admin password:
MSG
cat /var/lib/jenkins/secrets/initialAdminPassword
cat <<'MSG'
Next: finish the set-up wizard, then write jenkins_jobs.ini:
  [jenkins]
  url=http://localhost:8080/
  user=admin
  password=<API token>
and run: jenkins-jobs --conf jenkins_jobs.ini update lab2/jobs
MSG
