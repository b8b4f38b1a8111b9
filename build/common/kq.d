build/common/kq.o: common/kq.c common/kq.h common/log.h \
 /usr/include/cjson/cJSON.h
common/kq.h:
common/log.h:
/usr/include/cjson/cJSON.h:
