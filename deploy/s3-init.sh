#!/bin/sh
# One-shot set-up of the S3 server for deploy/compose.yaml (service
# s3-init). It runs in the S3 server's own image, with the server's root
# credentials — the only container besides the server that sees them — and:
#   1. creates the bucket Strata tiers to;
#   2. creates a user that may use that bucket and nothing else: on MinIO a
#      policy allowing s3:* on arn:aws:s3:::BUCKET and BUCKET/* only; on
#      versitygw (what the compose test runs instead, since CI cannot pull
#      MinIO) a plain user owning the bucket, which is all such a user may
#      touch;
#   3. writes that user's key as an AWS shared credentials file for the
#      brokers, who mount its volume read-only and find it through
#      AWS_SHARED_CREDENTIALS_FILE: owned by the strata user (65532), mode
#      0400, in a 0700 directory. No secret goes through the environment.
# Safe to run again (every `up` does): the secret of an existing
# credentials file is kept, so running brokers keep working.
#
# Environment: S3_SERVER (minio or versitygw), S3_ENDPOINT, S3_ROOT_USER,
# S3_ROOT_PASSWORD; optional STRATA_BUCKET (strata), STRATA_S3_USER
# (strata-broker), STRATA_CREDENTIALS_FILE (/secrets/aws-credentials).
set -eu

: "${S3_SERVER:?minio or versitygw}" "${S3_ENDPOINT:?}" "${S3_ROOT_USER:?}" "${S3_ROOT_PASSWORD:?}"
bucket=${STRATA_BUCKET:-strata}
user=${STRATA_S3_USER:-strata-broker}
file=${STRATA_CREDENTIALS_FILE:-/secrets/aws-credentials}
owner=65532:65532 # the user of the strata image
umask 077

secret=
if [ -f "$file" ]; then
	secret=$(sed -n 's/^aws_secret_access_key = //p' "$file")
fi
if [ -z "$secret" ]; then
	secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
fi

# retry runs a command until it succeeds, for up to a minute (the server
# starts next to this step).
retry() {
	tries=0
	until "$@" >/dev/null 2>&1; do
		tries=$((tries + 1))
		if [ "$tries" -ge 60 ]; then
			echo "s3-init: the S3 server at $S3_ENDPOINT does not answer: $*" >&2
			"$@"
			exit 1
		fi
		sleep 1
	done
}

case "$S3_SERVER" in
minio)
	retry mc alias set root "$S3_ENDPOINT" "$S3_ROOT_USER" "$S3_ROOT_PASSWORD"
	mc mb --ignore-existing "root/$bucket"
	policy=$(mktemp)
	cat >"$policy" <<EOF
{
  "Version": "2012-10-17",
  "Statement": [{
    "Effect": "Allow",
    "Action": ["s3:*"],
    "Resource": ["arn:aws:s3:::$bucket", "arn:aws:s3:::$bucket/*"]
  }]
}
EOF
	mc admin policy create root "$bucket-bucket-only" "$policy"
	mc admin user add root "$user" "$secret"
	# Refused when the policy is attached already (a second run); the
	# access check below is what decides.
	mc admin policy attach root "$bucket-bucket-only" --user "$user" >/dev/null 2>&1 || true
	mc alias set broker "$S3_ENDPOINT" "$user" "$secret" >/dev/null
	retry mc ls "broker/$bucket"
	;;
versitygw)
	admin() {
		versitygw admin --access "$S3_ROOT_USER" --secret "$S3_ROOT_PASSWORD" --endpoint-url "$S3_ENDPOINT" "$@"
	}
	retry admin list-users
	if admin list-users | grep -q "^$user "; then
		admin update-user --access "$user" --secret "$secret" --role user
	else
		admin create-user --access "$user" --secret "$secret" --role user
	fi
	if ! admin list-buckets | grep -q "^$bucket "; then
		admin create-bucket --owner "$user" --bucket "$bucket"
	fi
	;;
*)
	echo "s3-init: S3_SERVER=$S3_SERVER: want minio or versitygw" >&2
	exit 2
	;;
esac

# Written aside and renamed, so a broker never reads half a file.
directory=$(dirname "$file")
mkdir -p "$directory"
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$user" "$secret" >"$file.tmp"
chown "$owner" "$file.tmp" "$directory"
chmod 0400 "$file.tmp"
chmod 0700 "$directory"
mv -f "$file.tmp" "$file"
echo "s3-init: bucket $bucket ready; user $user may use it and nothing else; its key is in $file"
